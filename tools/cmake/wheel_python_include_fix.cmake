# Injected with -DCMAKE_PROJECT_INCLUDE=... when building an interface package
# against the ROS 2 wheels from PyPI (tools/build_interfaces.sh). Not used by colcon.
#
# The wheels' exported *__rosidl_generator_py targets name the Python include
# directory of the machine that built them (/opt/python/cp311-cp311/include/...),
# and its NumPy include directory; neither exists here and CMake's generate step
# fails. Once the whole directory has been configured, replace every such
# missing directory with this interpreter's Python and NumPy include directories.
function(_octo_ros_fix_wheel_python_includes)
  find_package(Python3 REQUIRED COMPONENTS Interpreter Development.Module NumPy)
  get_property(targets DIRECTORY "${CMAKE_SOURCE_DIR}" PROPERTY IMPORTED_TARGETS)
  foreach(target IN LISTS targets)
    get_target_property(dirs "${target}" INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT dirs)
      continue()
    endif()
    set(fixed "")
    set(changed FALSE)
    foreach(dir IN LISTS dirs)
      if(dir MATCHES "/python3\\.[0-9]+" AND NOT EXISTS "${dir}")
        list(APPEND fixed ${Python3_INCLUDE_DIRS} ${Python3_NumPy_INCLUDE_DIRS})
        set(changed TRUE)
      else()
        list(APPEND fixed "${dir}")
      endif()
    endforeach()
    if(changed)
      list(REMOVE_DUPLICATES fixed)
      set_target_properties("${target}" PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${fixed}")
    endif()
  endforeach()
endfunction()

cmake_language(DEFER DIRECTORY "${CMAKE_SOURCE_DIR}" CALL _octo_ros_fix_wheel_python_includes)
