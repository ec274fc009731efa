#ifndef C_GATEWAY_HIREDIS_SHIM_H
#define C_GATEWAY_HIREDIS_SHIM_H

#include <hiredis/hiredis.h>
#include <hiredis/read.h>

// hiredis 0.14 declares `maxbuf` as a struct field and the reply constants as macros;
// these wrappers keep the Swift side free of C macro knowledge.

static inline int cgw_REDIS_OK(void) { return REDIS_OK; }
static inline int cgw_REDIS_ERR(void) { return REDIS_ERR; }

static inline void cgw_redisReaderSetMaxBuf(redisReader *reader, size_t maxbuf) {
    reader->maxbuf = maxbuf;
}

#endif
