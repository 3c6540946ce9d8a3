/* variant.c: see variant.h. */
#include "support/variant.h"

#include "support/test.h"

#include "base/err.h"

void variant_load(g4_desc *d, const char *variant) {
    char *path = eft_asprintf("%s/tests/data_files/gemma4/%s/config.json", EFT_SOURCE_DIR, variant);
    if (g4_desc_load(d, path)) fail_msg("%s", eft_err_msg());
    eft_free(path);
}
