// Linked into the addons by `npm run test:sanitize` only (scripts/test-sanitize.mjs).
// gcc's UBSan runtime (libubsan) keeps its own report settings next to ASan's and ignores
// UBSAN_OPTIONS=log_path when ASan is in the process, so its reports would go to stderr,
// which a test may swallow. This points them at a file per process, as ASan's are.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdlib.h>

__attribute__((constructor)) static void upcase_ubsan_log_path(void) {
  const char *path = getenv("UPCASE_UBSAN_LOG");
  void *ubsan = dlopen("libubsan.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (path == NULL || ubsan == NULL) return;
  void (*set_report_path)(const char *) = (void (*)(const char *))dlsym(ubsan, "__sanitizer_set_report_path");
  if (set_report_path != NULL) set_report_path(path);
}
