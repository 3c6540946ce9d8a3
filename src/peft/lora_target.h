/* lora_target.h: which weights LoRA wraps, decided as PEFT decides.
 *
 * PEFT (tuners_utils.check_target_module_exists) matches each module's dotted path:
 *   - target_modules given as one string: a regular expression that must match the WHOLE path
 *     (re.fullmatch), e.g. 'model.language_model.layers.[\d]+.(mlp|self_attn).(q|v)_proj';
 *     the string "all-linear" means every linear layer but the output head;
 *   - given as a list: a path is targeted when it equals an item or ends with "." + item;
 *   - target_parameters (3-D MoE expert tensors): the parameter path ends with "." + item.
 * Axolotl's lora_target_linear adds every linear layer of the text model (eft never loads the
 * vision and audio towers, so it cannot wrap them by mistake as Axolotl does for Gemma 4).
 *
 * The paths are those of the checkpoint's layout (g4_tensor.module), so a regex written for the
 * multimodal wrapper ("model.language_model.layers...") selects nothing on a text-only
 * checkpoint ("model.layers..."): that is an error naming the key and showing a real path.
 */
#ifndef EFT_PEFT_LORA_TARGET_H
#define EFT_PEFT_LORA_TARGET_H

#include "io/config.h"
#include "model/g4_plan.h"

#include <stdbool.h>

/* Marks sel[i] for every tensor ts->t[i] that LoRA wraps under the config's lora_target_modules,
 * lora_target_linear and lora_target_parameters. Returns the number selected, or -1 with an
 * error located at the key (bad regex, nothing matched, nothing given). */
int lora_select(const eft_config *c, const g4_tensors *ts, bool *sel);

/* Whether one module path is targeted by a target_modules regex (full match) or suffix list;
 * for tests and for reading a PEFT adapter_config.json. A bad regex returns -1 with an error. */
int lora_match_regex(const char *regex, const char *path);
bool lora_match_suffix(const char *const *items, int n, const char *path);

#endif
