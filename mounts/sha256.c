#include "mounts/sha256.h"

#include <string.h>

/* The first 32 bits of the fractional parts of the cube roots of the first 64 primes. */
static const uint32_t round_constants[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

static uint32_t rotate_right(uint32_t x, unsigned n)
{
        return (x >> n) | (x << (32 - n));
}

static uint32_t load_be32(const uint8_t *p)
{
        return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void store_be32(uint8_t *p, uint32_t x)
{
        p[0] = (uint8_t)(x >> 24);
        p[1] = (uint8_t)(x >> 16);
        p[2] = (uint8_t)(x >> 8);
        p[3] = (uint8_t)x;
}

static void compress_block(uint32_t state[8], const uint8_t block[64])
{
        uint32_t schedule[64];
        uint32_t a, b, c, d, e, f, g, h;

        for (unsigned i = 0; i < 16; i++)
                schedule[i] = load_be32(block + 4 * i);
        for (unsigned i = 16; i < 64; i++) {
                uint32_t w15 = schedule[i - 15], w2 = schedule[i - 2];
                uint32_t s0 = rotate_right(w15, 7) ^ rotate_right(w15, 18) ^ (w15 >> 3);
                uint32_t s1 = rotate_right(w2, 17) ^ rotate_right(w2, 19) ^ (w2 >> 10);

                schedule[i] = schedule[i - 16] + s0 + schedule[i - 7] + s1;
        }

        a = state[0];
        b = state[1];
        c = state[2];
        d = state[3];
        e = state[4];
        f = state[5];
        g = state[6];
        h = state[7];

        for (unsigned i = 0; i < 64; i++) {
                uint32_t sum1 = rotate_right(e, 6) ^ rotate_right(e, 11) ^ rotate_right(e, 25);
                uint32_t choice = (e & f) ^ (~e & g);
                uint32_t t1 = h + sum1 + choice + round_constants[i] + schedule[i];
                uint32_t sum0 = rotate_right(a, 2) ^ rotate_right(a, 13) ^ rotate_right(a, 22);
                uint32_t majority = (a & b) ^ (a & c) ^ (b & c);
                uint32_t t2 = sum0 + majority;

                h = g;
                g = f;
                f = e;
                e = d + t1;
                d = c;
                c = b;
                b = a;
                a = t1 + t2;
        }

        state[0] += a;
        state[1] += b;
        state[2] += c;
        state[3] += d;
        state[4] += e;
        state[5] += f;
        state[6] += g;
        state[7] += h;
}

void sha256_init(struct sha256_ctx *ctx)
{
        /* The first 32 bits of the fractional parts of the square roots of the first 8 primes. */
        static const uint32_t initial_state[8] = {
            0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
            0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
        };

        memcpy(ctx->state, initial_state, sizeof(initial_state));
        ctx->length = 0;
        ctx->block_used = 0;
}

void sha256_update(struct sha256_ctx *ctx, const void *data, size_t size)
{
        const uint8_t *p = data;

        ctx->length += size;

        if (ctx->block_used > 0) {
                size_t n = sizeof(ctx->block) - ctx->block_used;

                if (n > size)
                        n = size;
                memcpy(ctx->block + ctx->block_used, p, n);
                ctx->block_used += n;
                p += n;
                size -= n;
                if (ctx->block_used < sizeof(ctx->block))
                        return;
                compress_block(ctx->state, ctx->block);
                ctx->block_used = 0;
        }

        for (; size >= sizeof(ctx->block); p += sizeof(ctx->block), size -= sizeof(ctx->block))
                compress_block(ctx->state, p);

        memcpy(ctx->block, p, size);
        ctx->block_used = size;
}

void sha256_final(struct sha256_ctx *ctx, uint8_t ret_digest[SHA256_DIGEST_SIZE])
{
        uint64_t bit_length = ctx->length * 8;

        /* Padding: one 1 bit, zeros up to 56 bytes into a block, then the big-endian bit length. */
        ctx->block[ctx->block_used++] = 0x80;
        if (ctx->block_used > 56) {
                memset(ctx->block + ctx->block_used, 0, sizeof(ctx->block) - ctx->block_used);
                compress_block(ctx->state, ctx->block);
                ctx->block_used = 0;
        }
        memset(ctx->block + ctx->block_used, 0, 56 - ctx->block_used);
        store_be32(ctx->block + 56, (uint32_t)(bit_length >> 32));
        store_be32(ctx->block + 60, (uint32_t)bit_length);
        compress_block(ctx->state, ctx->block);

        for (unsigned i = 0; i < 8; i++)
                store_be32(ret_digest + 4 * i, ctx->state[i]);
        memset(ctx, 0, sizeof(*ctx));
}

void sha256_buffer(const void *data, size_t size, uint8_t ret_digest[SHA256_DIGEST_SIZE])
{
        struct sha256_ctx ctx;

        sha256_init(&ctx);
        sha256_update(&ctx, data, size);
        sha256_final(&ctx, ret_digest);
}

void sha256_to_hex(const uint8_t digest[SHA256_DIGEST_SIZE], char ret_hex[SHA256_HEX_SIZE])
{
        static const char hex_digits[] = "0123456789abcdef";

        for (unsigned i = 0; i < SHA256_DIGEST_SIZE; i++) {
                ret_hex[2 * i] = hex_digits[digest[i] >> 4];
                ret_hex[2 * i + 1] = hex_digits[digest[i] & 0xf];
        }
        ret_hex[2 * SHA256_DIGEST_SIZE] = '\0';
}
