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

// Whether the reader holds no part of a reply: every byte fed was consumed and no reply
// is half read. hiredis 0.14 keeps its task stack in `rstack` and leaves task 0 started
// (type still -1) after a `redisReaderGetReply` that found no bytes; 1.x has `task`.
static inline int cgw_redisReaderIsBetweenReplies(const redisReader *reader) {
    if (reader->pos != reader->len) return 0;
    if (reader->ridx == -1) return 1;
#if HIREDIS_MAJOR >= 1
    return reader->ridx == 0 && reader->task[0]->type < 0;
#else
    return reader->ridx == 0 && reader->rstack[0].type < 0;
#endif
}

#endif
