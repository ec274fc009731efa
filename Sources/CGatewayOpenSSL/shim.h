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

// ---- BEGIN GatewayTLS shims (TLS termination and client; keep this block together) ----
#include <openssl/x509v3.h>
#include <openssl/pem.h>
#include <openssl/bio.h>

static inline long cgw_SSL_CTX_set_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_mode(ctx, mode);
}

static inline long cgw_SSL_CTX_set_session_cache_mode(SSL_CTX *ctx, long mode) {
    return SSL_CTX_set_session_cache_mode(ctx, mode);
}

static inline long cgw_SSL_CTX_sess_set_cache_size(SSL_CTX *ctx, long size) {
    return SSL_CTX_sess_set_cache_size(ctx, size);
}

static inline int cgw_SSL_CTX_set1_groups_list(SSL_CTX *ctx, const char *list) {
    return (int)SSL_CTX_set1_groups_list(ctx, list);
}

static inline int cgw_SSL_set_tlsext_host_name(SSL *ssl, const char *name) {
    return (int)SSL_set_tlsext_host_name(ssl, name);
}

typedef int (*cgw_servername_callback)(SSL *ssl, int *alert, void *arg);

static inline int cgw_SSL_CTX_set_tlsext_servername_callback(SSL_CTX *ctx, cgw_servername_callback cb, void *arg) {
    if (SSL_CTX_set_tlsext_servername_callback(ctx, cb) != 1) return 0;
    return (int)SSL_CTX_set_tlsext_servername_arg(ctx, arg);
}

static inline long cgw_BIO_set_mem_eof_return(BIO *bio, long value) {
    return BIO_set_mem_eof_return(bio, value);
}

static inline uint64_t cgw_SSL_OP_NO_RENEGOTIATION(void) { return SSL_OP_NO_RENEGOTIATION; }
static inline uint64_t cgw_SSL_OP_NO_COMPRESSION(void) { return SSL_OP_NO_COMPRESSION; }
static inline uint64_t cgw_SSL_OP_CIPHER_SERVER_PREFERENCE(void) { return SSL_OP_CIPHER_SERVER_PREFERENCE; }
static inline uint64_t cgw_SSL_OP_NO_CLIENT_RENEGOTIATION(void) {
#ifdef SSL_OP_NO_CLIENT_RENEGOTIATION
    return SSL_OP_NO_CLIENT_RENEGOTIATION;
#else
    return 0;
#endif
}
// ---- END GatewayTLS shims ----

#endif
