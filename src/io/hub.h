/* hub.h: finding a model or a dataset named in a config on this machine.
 *
 * A config names weights and data the way Axolotl does: a local path, or a Hugging Face Hub id
 * (`google/gemma-4-31B`, `mlabonne/FineTome-100k`). eft never downloads: a Hub id is looked up
 * in the local Hugging Face cache, in the layout `huggingface-cli download` leaves:
 *
 *     <cache>/models--google--gemma-4-31B/refs/main            the commit of branch main
 *     <cache>/models--google--gemma-4-31B/snapshots/<commit>/  the files (links into blobs/)
 *
 * with <cache> = $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
 * ~/.cache/huggingface/hub (as huggingface_hub computes it). Datasets live in
 * `datasets--ORG--NAME`. When a name is neither, the error says where eft looked, the command
 * that fetches it, and how to point the key at a local copy.
 */
#ifndef EFT_IO_HUB_H
#define EFT_IO_HUB_H

#include <stdbool.h>

typedef enum hub_kind { HUB_MODEL, HUB_DATASET } hub_kind;

/* The Hub cache folder, from the environment (owned by the caller). */
char *hub_cache_dir(void);

/* True for a well-formed Hub id: "name" or "org/name" of letters, digits, '-', '_', '.', with no
 * "--" or "..", at most 96 characters per part. */
bool hub_is_repo_id(const char *id);

/* Resolves `name`, the value of config key `key` set at `where` ("config.yaml:1:13"), to a local
 * file or folder: a local path (with ~ expanded) wins; else a Hub id is looked up in the cache at
 * `revision` (a branch, tag or commit; NULL for main). Returns the path (owned by the caller), or
 * NULL with the error recorded. */
char *hub_resolve(hub_kind kind, const char *name, const char *revision, const char *key,
                  const char *where);

#endif
