# Finds the three OpenCV modules ssld uses (core, imgproc, imgcodecs) from Debian's split
# -dev packages, which ship no OpenCVConfig.cmake, and defines the target OpenCV::image.
find_path(OpenCVImage_INCLUDE_DIR opencv2/imgcodecs.hpp PATH_SUFFIXES opencv4)
foreach(module core imgproc imgcodecs)
  find_library(OpenCVImage_${module}_LIBRARY opencv_${module})
  list(APPEND OpenCVImage_LIBRARIES ${OpenCVImage_${module}_LIBRARY})
endforeach()
include(FindPackageHandleStandardArgs)
find_package_handle_standard_args(OpenCVImage REQUIRED_VARS OpenCVImage_INCLUDE_DIR
  OpenCVImage_core_LIBRARY OpenCVImage_imgproc_LIBRARY OpenCVImage_imgcodecs_LIBRARY)
if(OpenCVImage_FOUND AND NOT TARGET OpenCV::image)
  add_library(OpenCV::image INTERFACE IMPORTED)
  set_target_properties(OpenCV::image PROPERTIES
    INTERFACE_INCLUDE_DIRECTORIES "${OpenCVImage_INCLUDE_DIR}"
    INTERFACE_LINK_LIBRARIES "${OpenCVImage_LIBRARIES}")
endif()
