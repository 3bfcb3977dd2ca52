/*
 * test_header.c - sembed.h compiles on its own as C11 and as C++ (the
 * Makefile builds this file both ways with -Werror).
 */
#include "sembed.h"

/* Touches a few declarations so the compiler checks them. */
int se_header_check(void);
int se_header_check(void) {
    se_model_params mp = se_model_default_params();
    se_error err;
    err.code = SE_OK;
    (void)mp;
    return (int)err.code + (int)SE_POOL_MEAN + (int)SE_SIM_COSINE;
}
