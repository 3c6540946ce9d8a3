/* g4_report.h: printing a Gemma 4 plan for people: the model summary, the per-layer table,
 * parameter counts per group, the memory plan (without and with recompute) and the tensor list.
 * `eft info` and `eft train --dry-run` print the same reports. */
#ifndef EFT_MODEL_G4_REPORT_H
#define EFT_MODEL_G4_REPORT_H

#include "base/buf.h"
#include "model/g4_memory.h"
#include "model/g4_plan.h"

#include <stdio.h>

void g4_report_summary(FILE *f, const char *dir, const g4_plan *p);
void g4_report_layers(FILE *f, const g4_plan *p, const g4_run_shape *s);
void g4_report_params(FILE *f, const g4_plan *p, const g4_param_counts *n);
/* One line describing a run shape ("T=2048, micro batch 1, weights bf16, LoRA r=16 on ..."). */
void g4_report_describe_shape(const g4_run_shape *s, eft_buf *o);
/* The memory plan in two columns: m without recompute, r with; s->recompute marks the chosen. */
void g4_report_memory(FILE *f, const g4_run_shape *s, const g4_memory *m, const g4_memory *r);
void g4_report_tensors(FILE *f, const g4_tensors *ts);

#endif
