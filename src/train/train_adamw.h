/*
 * train/train_adamw.h - the optimiser's state (train_optim.c steps it,
 * train_checkpoint.c saves and restores it).
 */
#ifndef SE_TRAIN_ADAMW_H
#define SE_TRAIN_ADAMW_H

#include "train/train.h"

struct se_adamw {
    se_adamw_params p;
    size_t step, n;    /* steps taken; floats per buffer (the model's) */
    float *m, *v;      /* first and second moments, in the model's parameter order */
};

#endif
