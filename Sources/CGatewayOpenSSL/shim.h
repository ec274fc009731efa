#ifndef C_GATEWAY_OPENSSL_SHIM_H
#define C_GATEWAY_OPENSSL_SHIM_H

#include <openssl/evp.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/ecdsa.h>
#include <openssl/bn.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/kdf.h>

// Swift cannot import function-like macros; these static inline wrappers expose the
// ones the gateway needs under a prefixed name.

static inline int cgw_SSL_CTX_set_min_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_min_proto_version(ctx, version);
}

static inline int cgw_SSL_CTX_set_max_proto_version(SSL_CTX *ctx, int version) {
    return (int)SSL_CTX_set_max_proto_version(ctx, version);
}

static inline unsigned long cgw_OPENSSL_VERSION_NUMBER(void) {
    return (unsigned long)OPENSSL_VERSION_NUMBER;
}

// --- JOSE / key handling (GatewayCrypto) ---

static inline int cgw_EVP_PKEY_PUBLIC_KEY(void) { return EVP_PKEY_PUBLIC_KEY; }
static inline int cgw_EVP_PKEY_KEYPAIR(void) { return EVP_PKEY_KEYPAIR; }
static inline int cgw_EVP_PKEY_ED25519(void) { return EVP_PKEY_ED25519; }

#endif
