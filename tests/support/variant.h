/* variant.h: the five released Gemma 4 sizes' config.json files kept in
 * tests/data_files/gemma4/<variant>/ ("e2b", "e4b", "12b", "26b-a4b", "31b"), loaded as a
 * g4_desc; a load failure fails the test. */
#ifndef EFT_TESTS_VARIANT_H
#define EFT_TESTS_VARIANT_H

#include "model/g4_desc.h"

void variant_load(g4_desc *d, const char *variant);

#endif
