/*
 * models/models.c - the table of architectures (see models.h).
 */
#include <stdio.h>
#include <string.h>

#include "models/models.h"

/* Every architecture, by config.json model_type. */
static const se_arch *const archs[] = {
    &se_arch_bert,
    &se_arch_xlmr,
    &se_arch_mpnet,
    &se_arch_use_lite,
};

const se_arch *se_arch_find(const char *model_type) {
    for (size_t i = 0; i < sizeof archs / sizeof *archs; i++)
        if (strcmp(archs[i]->model_type, model_type) == 0) return archs[i];
    return NULL;
}

void se_arch_list(char *out, size_t cap) {
    size_t k = 0;
    if (cap) out[0] = 0;
    for (size_t i = 0; i < sizeof archs / sizeof *archs && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? ", " : "", archs[i]->model_type);
}
