# make deb: three Debian packages from one build, by CPack's DEB generator
# (one package per install component; dpkg-shlibdeps names the libraries the
# binaries link): ufork (the command, its manuals, completion and systemd
# units), libufork-dev (headers, the static libraries, the CMake package and
# pkg-config files), python3-ufork (`import ufork`). The version is the
# project's, as `ufork --version`, ufork.__version__ and the package files say.
set(UFORK_MAINTAINER "ufork maintainers <maintainers@users.noreply.r-seed-f4d69961.example>")

if(UFORK_DEBIAN)
  # Each package's copyright and (gzipped) changelog, as Debian's policy asks.
  string(TIMESTAMP UFORK_DEB_DATE "%a, %d %b %Y %H:%M:%S +0000" UTC)
  configure_file(contrib/debian/changelog.in ${PROJECT_BINARY_DIR}/debian/changelog @ONLY)
  add_custom_command(OUTPUT ${PROJECT_BINARY_DIR}/debian/changelog.gz
                     COMMAND gzip -9nkf ${PROJECT_BINARY_DIR}/debian/changelog
                     DEPENDS ${PROJECT_BINARY_DIR}/debian/changelog)
  add_custom_target(ufork_debian_changelog ALL DEPENDS ${PROJECT_BINARY_DIR}/debian/changelog.gz)
  foreach(pair ufork:ufork dev:libufork-dev python:python3-ufork)  # component:package
    string(REPLACE ":" ";" pair ${pair})
    list(GET pair 0 component)
    list(GET pair 1 package)
    install(FILES ${PROJECT_BINARY_DIR}/debian/changelog.gz contrib/debian/copyright
            DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/${package} COMPONENT ${component})
  endforeach()
endif()

set(CPACK_PACKAGE_NAME ufork)
set(CPACK_PACKAGE_VENDOR "ufork")
set(CPACK_PACKAGE_CONTACT "${UFORK_MAINTAINER}")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_STRIP_FILES ON)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_COMPONENTS_ALL ufork dev)
if(UFORK_PYTHON_MODULE)
  list(APPEND CPACK_COMPONENTS_ALL python)
endif()
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${UFORK_MAINTAINER}")
# Each description's first line is its package's synopsis: CPack puts
# CPACK_PACKAGE_DESCRIPTION_SUMMARY first unless it is left at its default.
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "${PROJECT_NAME} built using CMake")

set(CPACK_DEBIAN_UFORK_PACKAGE_NAME ufork)
set(CPACK_DEBIAN_UFORK_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_UFORK_PACKAGE_RECOMMENDS python3-ufork)
set(CPACK_COMPONENT_UFORK_DESCRIPTION "pre-forks worker processes and keeps them running
ufork runs N copies of a program (any language; sd_listen_fds and sd_notify
as systemd speaks them), replaces dead ones at once, kills hung ones, echoes
their output with a pid prefix, and offers a console, a control socket, a
status page, rolling reloads and in-place upgrades. `ufork hello` serves a
pre-forked HTTP hello world; `ufork wsgi` and `ufork asgi` serve Python apps
(with python3-ufork).")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libufork-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
# What a consumer of the static libraries and their CMake and pkg-config
# files needs to build and link.
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS
    "libfmt-dev, libspdlog-dev, nlohmann-json3-dev, libedit-dev, libboost-dev, libboost-stacktrace-dev, pkg-config")
set(CPACK_COMPONENT_DEV_DESCRIPTION "pre-forks worker processes and keeps them running (C++ library)
The ufork library for C++20: an arbiter that forks workers running your
function, watches their heartbeats, replaces dead and hung ones, with a
console, control socket and daemon mode; and ufork::http, a pre-forked
HTTP/1.1 server on Boost.Beast. Static libraries, headers, a CMake package
(find_package(ufork COMPONENTS http)) and pkg-config files.")

set(CPACK_DEBIAN_PYTHON_PACKAGE_NAME python3-ufork)
set(CPACK_DEBIAN_PYTHON_PACKAGE_SECTION python)
set(CPACK_DEBIAN_PYTHON_PACKAGE_DEPENDS
    "python3 (>= ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}), python3 (<< ${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}.99)")
set(CPACK_COMPONENT_PYTHON_DESCRIPTION "pre-forks worker processes and keeps them running (Python module)
import ufork: uFork's Arbiter API on the ufork library, serve_wsgi and
serve_asgi (pre-forked WSGI and ASGI servers on its HTTP helper), and the
module behind `ufork wsgi` and `ufork asgi`.")

include(CPack)
