#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "supervisor/config.h"
#include "supervisor/select.h"

/* A config as the daemon has it after start-up: defaults, the given label
 * rules, then config_finalize(), which adds the default rule when there is none. */
static void make_config(struct config *config, const char *const *rules, size_t n_rules,
                        bool select_all)
{
        char *error = NULL;

        config_init_defaults(config);
        if (n_rules > 0) {
                config->select_labels = calloc(n_rules, sizeof(struct label_rule));
                assert_non_null(config->select_labels);
        }
        for (size_t i = 0; i < n_rules; i++) {
                assert_int_equal(parse_label_rule(rules[i], &config->select_labels[i]), 0);
                config->n_select_labels++;
        }
        config->select_all = select_all;

        assert_int_equal(config_finalize(config, &error), 0);
        assert_null(error);
}

/* Parse a JSON object of labels, as the Docker API returns them in Config.Labels. */
static json_object *labels_from(const char *text)
{
        json_object *labels = json_tokener_parse(text);

        assert_non_null(labels);
        return labels;
}

static bool selected(const struct config *config, const char *labels_text)
{
        json_object *labels = labels_from(labels_text);
        bool result = container_is_selected(config, labels);

        json_object_put(labels);
        return result;
}

static void test_default_label_rule(void **state)
{
        struct config config;

        make_config(&config, NULL, 0, false);
        assert_int_equal(config.n_select_labels, 1);
        assert_string_equal(config.select_labels[0].key, "execvisor.enable");
        assert_string_equal(config.select_labels[0].value, "true");

        assert_true(selected(&config, "{\"execvisor.enable\": \"true\"}"));
        assert_true(selected(&config, "{\"a\": \"b\", \"execvisor.enable\": \"true\"}"));
        assert_false(selected(&config, "{\"execvisor.enable\": \"false\"}"));
        assert_false(selected(&config, "{\"execvisor.enable\": \"TRUE\"}"));
        assert_false(selected(&config, "{\"execvisor.enable\": \"true \"}"));
        assert_false(selected(&config, "{\"execvisor.enable\": \"\"}"));
        assert_false(selected(&config, "{\"execvisor.enabled\": \"true\"}"));
        assert_false(selected(&config, "{}"));
        config_free(&config);
}

static void test_rule_without_value_any_value(void **state)
{
        const char *const rules[] = { "com.example.exec" };
        struct config config;

        make_config(&config, rules, 1, false);
        assert_null(config.select_labels[0].value);

        assert_true(selected(&config, "{\"com.example.exec\": \"yes\"}"));
        assert_true(selected(&config, "{\"com.example.exec\": \"\"}"));
        assert_false(selected(&config, "{\"com.example\": \"yes\"}"));
        assert_false(selected(&config, "{}"));
        config_free(&config);
}

static void test_rule_with_empty_value(void **state)
{
        const char *const rules[] = { "com.example.exec=" };
        struct config config;

        make_config(&config, rules, 1, false);
        assert_non_null(config.select_labels[0].value);

        assert_true(selected(&config, "{\"com.example.exec\": \"\"}"));
        assert_false(selected(&config, "{\"com.example.exec\": \"x\"}"));
        config_free(&config);
}

static void test_value_may_contain_equals(void **state)
{
        const char *const rules[] = { "a=b=c" };
        struct config config;

        make_config(&config, rules, 1, false);
        assert_string_equal(config.select_labels[0].key, "a");
        assert_string_equal(config.select_labels[0].value, "b=c");

        assert_true(selected(&config, "{\"a\": \"b=c\"}"));
        assert_false(selected(&config, "{\"a\": \"b\"}"));
        config_free(&config);
}

static void test_all_rules_must_match(void **state)
{
        const char *const rules[] = { "team=payments", "exec", "env=prod" };
        struct config config;

        make_config(&config, rules, 3, false);
        /* The given rules replace the default one. */
        assert_int_equal(config.n_select_labels, 3);

        assert_true(selected(&config, "{\"team\": \"payments\", \"exec\": \"1\", \"env\": \"prod\"}"));
        assert_false(selected(&config, "{\"team\": \"payments\", \"exec\": \"1\"}"));
        assert_false(selected(&config, "{\"team\": \"payments\", \"env\": \"prod\"}"));
        assert_false(selected(&config, "{\"exec\": \"1\", \"env\": \"prod\"}"));
        assert_false(selected(&config, "{\"team\": \"search\", \"exec\": \"1\", \"env\": \"prod\"}"));
        assert_false(selected(&config, "{\"team\": \"payments\", \"exec\": \"1\", \"env\": \"dev\"}"));
        assert_false(selected(&config, "{\"execvisor.enable\": \"true\"}"));
        config_free(&config);
}

static void test_all_selects_everything(void **state)
{
        const char *const rules[] = { "team=payments" };
        struct config config;

        make_config(&config, NULL, 0, true);
        assert_true(selected(&config, "{}"));
        assert_true(selected(&config, "{\"execvisor.enable\": \"false\"}"));
        assert_true(container_is_selected(&config, NULL));
        config_free(&config);

        /* --all wins over label rules that do not match. */
        make_config(&config, rules, 1, true);
        assert_true(selected(&config, "{\"team\": \"search\"}"));
        config_free(&config);
}

static void test_labels_null(void **state)
{
        const char *const rules[] = { "exec" };
        struct config config;

        make_config(&config, NULL, 0, false);
        assert_false(container_is_selected(&config, NULL));
        config_free(&config);

        make_config(&config, rules, 1, false);
        assert_false(container_is_selected(&config, NULL));
        config_free(&config);
}

static void test_non_string_label_value(void **state)
{
        const char *const rules[] = { "exec" };
        struct config config;

        make_config(&config, NULL, 0, false);
        /* Docker's labels are strings, so anything else is not "true". */
        assert_false(selected(&config, "{\"execvisor.enable\": true}"));
        assert_false(selected(&config, "{\"execvisor.enable\": 1}"));
        assert_false(selected(&config, "{\"execvisor.enable\": null}"));
        assert_false(selected(&config, "{\"execvisor.enable\": [\"true\"]}"));
        assert_false(selected(&config, "{\"execvisor.enable\": {\"v\": \"true\"}}"));
        config_free(&config);

        make_config(&config, rules, 1, false);
        assert_false(selected(&config, "{\"exec\": null}"));
        assert_false(selected(&config, "{\"exec\": 0}"));
        config_free(&config);
}

static void test_labels_not_an_object(void **state)
{
        struct config config;

        make_config(&config, NULL, 0, false);
        assert_false(selected(&config, "[\"execvisor.enable=true\"]"));
        assert_false(selected(&config, "\"execvisor.enable=true\""));
        config_free(&config);
}

static void test_no_rules_selects_nothing(void **state)
{
        struct config config;

        /* Without config_finalize() there is no rule, and no rule selects nothing. */
        config_init_defaults(&config);
        assert_int_equal(config.n_select_labels, 0);
        assert_false(selected(&config, "{\"execvisor.enable\": \"true\"}"));
        assert_false(selected(&config, "{}"));
        config_free(&config);
}

static void test_parse_label_rule_rejects(void **state)
{
        struct label_rule rule = { .key = (char *)"untouched" };

        assert_int_equal(parse_label_rule("", &rule), -EINVAL);
        assert_int_equal(parse_label_rule("=value", &rule), -EINVAL);
        assert_int_equal(parse_label_rule("a b=c", &rule), -EINVAL);
        assert_int_equal(parse_label_rule("a\tb", &rule), -EINVAL);
        assert_string_equal(rule.key, "untouched");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_default_label_rule),
                cmocka_unit_test(test_rule_without_value_any_value),
                cmocka_unit_test(test_rule_with_empty_value),
                cmocka_unit_test(test_value_may_contain_equals),
                cmocka_unit_test(test_all_rules_must_match),
                cmocka_unit_test(test_all_selects_everything),
                cmocka_unit_test(test_labels_null),
                cmocka_unit_test(test_non_string_label_value),
                cmocka_unit_test(test_labels_not_an_object),
                cmocka_unit_test(test_no_rules_selects_nothing),
                cmocka_unit_test(test_parse_label_rule_rejects),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
