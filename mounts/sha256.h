#pragma once

/* SHA-256 (FIPS 180-4), small and dependency-free: it names generated bundle
 * layers by content and gives safe file names their collision suffix. Not
 * constant-time and not meant for secrets. */

#include <stddef.h>
#include <stdint.h>

#define SHA256_DIGEST_SIZE 32
#define SHA256_HEX_SIZE (2 * SHA256_DIGEST_SIZE + 1)

struct sha256_ctx {
        uint32_t state[8];
        uint64_t length; /* bytes hashed so far */
        uint8_t block[64];
        size_t block_used;
};

void sha256_init(struct sha256_ctx *ctx);
void sha256_update(struct sha256_ctx *ctx, const void *data, size_t size);
void sha256_final(struct sha256_ctx *ctx, uint8_t ret_digest[SHA256_DIGEST_SIZE]);

/* Hashes one buffer in a single call. */
void sha256_buffer(const void *data, size_t size, uint8_t ret_digest[SHA256_DIGEST_SIZE]);

/* Formats a digest as lowercase hex with a terminating NUL. */
void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char ret_hex[SHA256_HEX_SIZE]);
