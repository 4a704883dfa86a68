// The whole public API of ufork.
#pragma once

#include "ufork/arbiter.hpp"
#include "ufork/daemon.hpp"
#include "ufork/error.hpp"
#include "ufork/log.hpp"
#include "ufork/options.hpp"
#include "ufork/version.hpp"
#include "ufork/worker.hpp"
