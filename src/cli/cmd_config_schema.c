/* cmd_config_schema.c: `eft config-schema [--json]`: every config key eft knows, with its type,
 * default, status (supported / no_effect / not_yet) and meaning. The table is libeft's
 * (io/config.h); this only parses the flag. */
#include "cli/cli.h"

#include "base/err.h"
#include "io/config.h"

#include <stdio.h>
#include <string.h>

int cmd_config_schema(int argc, char **argv);

int cmd_config_schema(int argc, char **argv) {
    bool json = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json"))
            json = true;
        else
            return eft_fail("config-schema: unknown argument \"%s\". Usage: eft config-schema "
                            "[--json]",
                            argv[i]);
    }
    cfg_schema_print(stdout, json);
    return fflush(stdout) == 0 ? 0 : eft_fail_errno("config-schema: writing stdout", NULL);
}
