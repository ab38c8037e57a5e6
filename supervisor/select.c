#include "supervisor/select.h"

#include "supervisor/util.h"

bool container_is_selected(const struct config *config, json_object *labels)
{
        if (config->select_all)
                return true;
        if (config->n_select_labels == 0)
                return false;

        for (size_t i = 0; i < config->n_select_labels; i++) {
                const struct label_rule *rule = &config->select_labels[i];
                json_object *value = NULL;

                if (!labels || !json_object_object_get_ex(labels, rule->key, &value) ||
                    !json_object_is_type(value, json_type_string))
                        return false;
                if (rule->value && !streq(json_object_get_string(value), rule->value))
                        return false;
        }
        return true;
}
