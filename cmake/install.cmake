# install(): headers, the library, a CMake package and a pkg-config file.
include(CMakePackageConfigHelpers)
set(UFORK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/ufork)

# Each file is in one component, one Debian package each (cmake/package.cmake):
# dev (libufork-dev) here, ufork (the command) in cli/, python (python3-ufork)
# in python/.
install(TARGETS ufork EXPORT ufork-targets COMPONENT dev
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY include/ufork DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} COMPONENT dev)
install(FILES ${PROJECT_BINARY_DIR}/include/ufork/version.hpp DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ufork
        COMPONENT dev)
install(EXPORT ufork-targets NAMESPACE ufork:: DESTINATION ${UFORK_CMAKE_DIR} COMPONENT dev)
# The pkg-config files are relocatable: the prefix is found from where they are.
file(RELATIVE_PATH UFORK_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
if(UFORK_HTTP)
  # Its own export set: only `COMPONENTS http` asks the consumer for Boost.
  set_target_properties(ufork_http PROPERTIES EXPORT_NAME http)
  install(TARGETS ufork_http EXPORT ufork-http-targets COMPONENT dev
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
  install(EXPORT ufork-http-targets NAMESPACE ufork:: DESTINATION ${UFORK_CMAKE_DIR} COMPONENT dev)
  configure_file(cmake/ufork-http.pc.in ${PROJECT_BINARY_DIR}/ufork-http.pc @ONLY)
  install(FILES ${PROJECT_BINARY_DIR}/ufork-http.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
endif()
export(EXPORT ufork-targets NAMESPACE ufork:: FILE ${PROJECT_BINARY_DIR}/ufork-targets.cmake)

configure_package_config_file(cmake/uforkConfig.cmake.in ${PROJECT_BINARY_DIR}/uforkConfig.cmake
                              INSTALL_DESTINATION ${UFORK_CMAKE_DIR})
write_basic_package_version_file(${PROJECT_BINARY_DIR}/uforkConfigVersion.cmake
                                 COMPATIBILITY SameMajorVersion)
install(FILES ${PROJECT_BINARY_DIR}/uforkConfig.cmake ${PROJECT_BINARY_DIR}/uforkConfigVersion.cmake
        DESTINATION ${UFORK_CMAKE_DIR} COMPONENT dev)

# A static libufork needs fmt on the consumer's link line; a shared one does not.
# Boost.Stacktrace has no .pc file: its library by name.
if(BUILD_SHARED_LIBS)
  set(UFORK_PC_REQUIRES "Requires.private")
  set(UFORK_PC_STATIC_LIBS "")
else()
  set(UFORK_PC_REQUIRES "Requires")
  set(UFORK_PC_STATIC_LIBS " -lboost_stacktrace_backtrace")
endif()
configure_file(cmake/ufork.pc.in ${PROJECT_BINARY_DIR}/ufork.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/ufork.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig COMPONENT dev)
