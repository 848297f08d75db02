# ssld_add_plugin(NAME SOURCES src... [LINK_LIBRARIES lib...] [OUTPUT_DIRECTORY dir] [INSTALL]
#                 [TORCH_PCH])
#
# Builds a plugin library lib<NAME>.so: a dlopen-able module that links libtorch as a shared
# library, hides every symbol but the two handshake entry points (version script, hidden
# visibility), and refuses undefined symbols at link time rather than at load time.
# TORCH_PCH (inside the ssld tree only) reuses its precompiled <torch/torch.h>: worth it for
# sources that include torch/torch.h, a loss for those that include narrower headers.
set(_SSLD_PLUGIN_CMAKE_DIR "${CMAKE_CURRENT_LIST_DIR}")

function(ssld_add_plugin name)
  cmake_parse_arguments(ARG "INSTALL;TORCH_PCH" "OUTPUT_DIRECTORY" "SOURCES;LINK_LIBRARIES" ${ARGN})
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "ssld_add_plugin(${name}): SOURCES is required")
  endif()
  add_library(${name} MODULE ${ARG_SOURCES})
  target_link_libraries(${name} PRIVATE ssld::sdk ${ARG_LINK_LIBRARIES})
  set_target_properties(${name} PROPERTIES
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    POSITION_INDEPENDENT_CODE ON
    CXX_STANDARD 17
    CXX_STANDARD_REQUIRED ON
    LINK_DEPENDS "${_SSLD_PLUGIN_CMAKE_DIR}/plugin.version")
  target_link_options(${name} PRIVATE
    "LINKER:--version-script=${_SSLD_PLUGIN_CMAKE_DIR}/plugin.version"
    "LINKER:--no-undefined")
  if(ARG_OUTPUT_DIRECTORY)
    set_target_properties(${name} PROPERTIES LIBRARY_OUTPUT_DIRECTORY "${ARG_OUTPUT_DIRECTORY}")
  endif()
  if(ARG_TORCH_PCH AND TARGET ssld_torch_pch)
    target_precompile_headers(${name} REUSE_FROM ssld_torch_pch)
  endif()
  if(ARG_INSTALL)
    install(TARGETS ${name} LIBRARY DESTINATION ${SSLD_PLUGIN_INSTALL_DIR})
  endif()
endfunction()
