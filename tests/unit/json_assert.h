#pragma once

/* Field checks on json-c documents for the unit tests: each fails the test
 * with the key and the document when the field is missing or of another type.
 * Include after <cmocka.h>. */

#include <json-c/json.h>
#include <stdint.h>

static inline json_object *get_member(json_object *object, const char *key)
{
        json_object *value = NULL;

        assert_true(json_object_is_type(object, json_type_object));
        if (!json_object_object_get_ex(object, key, &value))
                fail_msg("key %s is missing in %s", key, json_object_to_json_string(object));
        return value;
}

static inline const char *get_string(json_object *object, const char *key)
{
        json_object *value = get_member(object, key);

        assert_true(json_object_is_type(value, json_type_string));
        return json_object_get_string(value);
}

static inline int64_t get_int(json_object *object, const char *key)
{
        json_object *value = get_member(object, key);

        assert_true(json_object_is_type(value, json_type_int));
        return json_object_get_int64(value);
}
