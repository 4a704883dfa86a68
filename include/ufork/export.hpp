// UFORK_API marks what a shared libufork exports: the public API. Everything
// else is built with hidden visibility (-DBUILD_SHARED_LIBS=ON).
#pragma once

#define UFORK_API __attribute__((visibility("default")))
