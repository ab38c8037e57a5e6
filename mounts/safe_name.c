#include "mounts/safe_name.h"

#include <stdbool.h>
#include <string.h>

#include "mounts/sha256.h"
#include "supervisor/util.h"

/* "-" plus this many hex digits of the name's SHA-256 mark a changed name. */
#define SUFFIX_HEX_DIGITS 8
#define SUFFIX_SIZE (1 + SUFFIX_HEX_DIGITS)

/* Stands in for a name that has nothing left after cleaning, such as "", "." or "--". */
#define EMPTY_NAME_PLACEHOLDER "container"

static bool is_safe_byte(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '_' || c == '.' || c == '-';
}

static bool is_lower_hex_digit(char c)
{
        return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static bool ends_with_suffix_pattern(const char *s, size_t length)
{
        if (length < SUFFIX_SIZE)
                return false;

        s += length - SUFFIX_SIZE;
        if (s[0] != '-')
                return false;
        for (size_t i = 1; i < SUFFIX_SIZE; i++)
                if (!is_lower_hex_digit(s[i]))
                        return false;
        return true;
}

char *safe_file_name(const char *container_name)
{
        const char *name = container_name;
        char *result = xmalloc(SAFE_FILE_NAME_MAX + 1);
        size_t length = 0;
        bool changed = false;
        uint8_t digest[SHA256_DIGEST_SIZE];
        char hex[SHA256_HEX_SIZE];

        if (name[0] == '/')
                name++;

        /* Replacement bytes are '_', so only the original leading bytes can be '-' or '.'. */
        const char *p = name;
        while (*p == '-' || *p == '.') {
                p++;
                changed = true;
        }

        for (; *p; p++) {
                char c = *p;

                if (!is_safe_byte(c)) {
                        c = '_';
                        changed = true;
                }
                if (length == SAFE_FILE_NAME_MAX) {
                        changed = true;
                        break;
                }
                result[length++] = c;
        }
        result[length] = '\0';

        if (length > 0 && !changed && !ends_with_suffix_pattern(result, length))
                return result;

        if (length == 0) {
                strcpy(result, EMPTY_NAME_PLACEHOLDER);
                length = strlen(EMPTY_NAME_PLACEHOLDER);
        }
        if (length > SAFE_FILE_NAME_MAX - SUFFIX_SIZE)
                length = SAFE_FILE_NAME_MAX - SUFFIX_SIZE;

        sha256_buffer(name, strlen(name), digest);
        sha256_to_hex(digest, hex);
        result[length] = '-';
        memcpy(result + length + 1, hex, SUFFIX_HEX_DIGITS);
        result[length + SUFFIX_SIZE] = '\0';
        return result;
}
