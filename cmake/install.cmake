# install.cmake -- what `cmake --install build/<preset> --prefix P` puts
# under P, the CMake package and hakmem.pc that find it, and the `hakmem`
# command (also configured into the build tree, where it works as is).
#
# Installed, and why:
#   lib/libhakmem.so.X.Y.Z, its soname link .so.X and the link .so: the
#     library that replaces malloc, by LD_PRELOAD or by linking -lhakmem
#     (hakmem::hakmem, `pkg-config hakmem`). The soname carries the major
#     version: a program linked against 1.x never loads 2.x.
#   lib/libhakmem.a: the hak_ API alone, overriding nothing
#     (hakmem::hakmem_static), for programs that want HAKMEM beside the C
#     library's malloc. ck_epoch is compiled into it, so it needs only
#     pthreads: INTERFACE_LINK_LIBRARIES Threads::Threads for CMake,
#     Libs.private -pthread for pkg-config.
#   lib/libhakmem-hardened.so.X.Y.Z and its soname link: the variant that
#     detects every double free, for `hakmem run --hardened`; preload only,
#     so no .so link and no CMake target (nothing should be built against a
#     debugging variant).
#   include/hakmem.h. Not hakmem_testing.h: fault injection for our tests.
#   bin/hakmem; share/doc/hakmem: the README, user guide and option table.
# Sanitizer presets build only libhakmem.a and install just that, the
# header and the package files.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(HK_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/hakmem)
set(HK_INSTALL_TARGETS hakmem_static)
add_library(hakmem::hakmem_static ALIAS hakmem_static)
if(TARGET hakmem_shared)
  set_target_properties(hakmem_shared PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR}
                        EXPORT_NAME hakmem)
  add_library(hakmem::hakmem ALIAS hakmem_shared)
  list(APPEND HK_INSTALL_TARGETS hakmem_shared)
endif()
if(TARGET hakmem_hardened)
  set_target_properties(hakmem_hardened PROPERTIES VERSION ${PROJECT_VERSION} SOVERSION ${PROJECT_VERSION_MAJOR})
  install(TARGETS hakmem_hardened LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR} NAMELINK_SKIP)
endif()

install(TARGETS ${HK_INSTALL_TARGETS} EXPORT hakmemTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
        LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
        INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(FILES include/hakmem.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(EXPORT hakmemTargets NAMESPACE hakmem:: DESTINATION ${HK_CMAKE_DIR})
configure_package_config_file(cmake/hakmemConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/hakmemConfig.cmake
                              INSTALL_DESTINATION ${HK_CMAKE_DIR})
# Same major version: the soname's promise.
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/hakmemConfigVersion.cmake
                                 VERSION ${PROJECT_VERSION} COMPATIBILITY SameMajorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/hakmemConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/hakmemConfigVersion.cmake
        DESTINATION ${HK_CMAKE_DIR})

# hakmem.pc finds its prefix from its own place (${pcfiledir}), so the
# prefix given to `cmake --install --prefix` at install time is the one it
# names, whatever CMAKE_INSTALL_PREFIX was at configure time.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}" OR IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  message(FATAL_ERROR "hakmem.pc and the hakmem command need CMAKE_INSTALL_LIBDIR and CMAKE_INSTALL_INCLUDEDIR relative to the prefix")
endif()
file(RELATIVE_PATH HK_PC_TO_PREFIX /p/${CMAKE_INSTALL_LIBDIR}/pkgconfig /p)
string(REGEX REPLACE "/$" "" HK_PC_TO_PREFIX "${HK_PC_TO_PREFIX}")
configure_file(cmake/hakmem.pc.in ${CMAKE_CURRENT_BINARY_DIR}/hakmem.pc @ONLY)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/hakmem.pc DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)

# The command: it looks for the library beside itself (the build tree) and
# then at HK_BIN_TO_LIB from itself (an installed prefix).
if(TARGET hakmem_shared)
  file(RELATIVE_PATH HK_BIN_TO_LIB /p/${CMAKE_INSTALL_BINDIR} /p/${CMAKE_INSTALL_LIBDIR})
  set(HK_SOVERSION ${PROJECT_VERSION_MAJOR})
  configure_file(tools/hakmem.in ${CMAKE_CURRENT_BINARY_DIR}/hakmem @ONLY
                 FILE_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
  install(PROGRAMS ${CMAKE_CURRENT_BINARY_DIR}/hakmem DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(FILES README.md docs/USER_GUIDE.md docs/OPTIONS.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
