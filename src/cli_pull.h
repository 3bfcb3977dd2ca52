/*
 * cli_pull.h - models by name on the command line: `sembed pull`,
 * `sembed models` and the resolution of `-m ORG/NAME` for every command
 * (cli_pull.c, on the public API's se_hub_* functions).
 */
#ifndef SE_CLI_PULL_H
#define SE_CLI_PULL_H

#include "sembed.h"

/* `sembed pull ORG/NAME [--revision REV] [--include GLOB]... [--token T]`. */
int cmd_pull(int argc, char **argv);

/* `sembed models [--json]`, `sembed models rm ORG/NAME...`. */
int cmd_models(int argc, char **argv);

/* se_model_load for a -m argument: a folder that exists is loaded as it
 * is; an ORG/NAME that is no folder is resolved through the hub cache
 * (downloaded on first use unless HF_HUB_OFFLINE is set, with progress on
 * stderr); the error says both when neither works. */
se_status cli_model_load(const char *arg, const se_model_params *params, se_model **out, se_error *err);

/* The same for se_tokenizer_load (sembed tokenize). */
se_status cli_tokenizer_load(const char *arg, se_tokenizer **out, se_error *err);

#endif
