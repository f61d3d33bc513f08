/* sha256.h: SHA-256 (FIPS 180-4), incremental. Files are identified by it everywhere (the base's
 * fingerprint, the adapters a fusion was trained on), and a base is hundreds of megabytes, so the
 * x86 SHA extensions are used where the CPU has them (the same digests; AF_NO_SHANI=1 turns them
 * off, for tests). af.h declares the one-call forms, af_sha256_hex and af_sha256_file. */
#ifndef AF_SHA256_H
#define AF_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uint32_t h[8];
    uint8_t buf[64];
    size_t nbuf;
    uint64_t total;
} sha256_ctx;

void sha256_init(sha256_ctx *c);
void sha256_update(sha256_ctx *c, const void *data, size_t n);
void sha256_final(sha256_ctx *c, char out[65]); /* 64 lowercase hex digits + NUL */
/* 1 when the SHA extensions are in use. */
int sha256_accelerated(void);

#endif
