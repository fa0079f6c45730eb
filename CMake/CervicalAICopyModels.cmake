# Copy the default model bundles into a folder, file by file, rewriting only files that changed.
#
#   cmake -DSOURCE_DIR=<source>/Resources/Models -DDESTINATION_DIR=<dir>/CervicalAIModels -P CervicalAICopyModels.cmake
#
# Run at build time by the top-level CMakeLists.txt (target CervicalAIModels), so that the build
# tree holds the bundles where the engine looks for them beside the scripted modules
# (CervicalAILib/bundles/catalog.py: <qt-scripted-modules>/CervicalAIModels) and the self-tests that
# ctest runs from the build tree find them. The installed extension gets them from install().
if(NOT SOURCE_DIR OR NOT DESTINATION_DIR)
  message(FATAL_ERROR "CervicalAICopyModels.cmake needs -DSOURCE_DIR=... and -DDESTINATION_DIR=...")
endif()
if(NOT IS_DIRECTORY "${SOURCE_DIR}")
  message(FATAL_ERROR "CervicalAICopyModels.cmake: ${SOURCE_DIR} is not a folder")
endif()
file(GLOB_RECURSE _cervicalai_model_files RELATIVE "${SOURCE_DIR}" "${SOURCE_DIR}/*")
if(NOT _cervicalai_model_files)
  message(FATAL_ERROR "CervicalAICopyModels.cmake: no model bundle files in ${SOURCE_DIR}")
endif()
foreach(_file IN LISTS _cervicalai_model_files)
  configure_file("${SOURCE_DIR}/${_file}" "${DESTINATION_DIR}/${_file}" COPYONLY)
endforeach()
