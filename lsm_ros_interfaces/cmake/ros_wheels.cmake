# Building a rosidl interface package with pip against the ROS 2 PyPI wheels (no ROS install).
# Included by lsm_ros_interfaces and by the compat_msgs packages; under colcon on a real
# ROS 2 install neither part changes anything.
#
# lsm_ros_use_ros_wheels(): when scikit-build-core builds (SKBUILD), point CMake and the
# ament index at the Python prefix that holds the ROS wheels.
macro(lsm_ros_use_ros_wheels)
  if(SKBUILD)
    # The ROS wheels put their CMake config files under <python prefix>/share, the
    # prefix pip builds in (the venv itself, or pip's isolated build environment).
    # Find it from where ament_package is installed: .../lib/pythonX.Y/site-packages/ament_package.
    find_package(Python3 REQUIRED COMPONENTS Interpreter)
    execute_process(
      COMMAND "${Python3_EXECUTABLE}" -c
        "import pathlib, ament_package; print(pathlib.Path(ament_package.__file__).resolve().parents[4])"
      OUTPUT_VARIABLE LSM_ROS_WHEEL_PREFIX
      OUTPUT_STRIP_TRAILING_WHITESPACE
      RESULT_VARIABLE _lsm_prefix_result)
    if(NOT _lsm_prefix_result EQUAL 0)
      message(FATAL_ERROR "lsm_ros_interfaces: cannot import ament_package with ${Python3_EXECUTABLE}; "
        "install the build requirements of pyproject.toml first")
    endif()
    message(STATUS "lsm_ros_interfaces: ROS 2 wheels prefix = ${LSM_ROS_WHEEL_PREFIX}")
    list(PREPEND CMAKE_PREFIX_PATH "${LSM_ROS_WHEEL_PREFIX}")
    if(DEFINED ENV{AMENT_PREFIX_PATH} AND NOT "$ENV{AMENT_PREFIX_PATH}" STREQUAL "")
      set(ENV{AMENT_PREFIX_PATH} "${LSM_ROS_WHEEL_PREFIX}:$ENV{AMENT_PREFIX_PATH}")
    else()
      set(ENV{AMENT_PREFIX_PATH} "${LSM_ROS_WHEEL_PREFIX}")
    endif()
  endif()
endmacro()

# Workaround for the PyPI ROS 2 wheels: their exported *__rosidl_generator_py targets
# carry include directories of the machine that built them (e.g. /opt/python/cp311-.../include),
# and CMake refuses imported targets with non-existent include paths. Drop absolute include
# directories that do not exist here. On a regular ROS 2 install every path exists and
# nothing changes.
function(lsm_ros_drop_missing_include_dirs)
  get_property(_targets DIRECTORY PROPERTY IMPORTED_TARGETS)
  foreach(_target IN LISTS _targets)
    get_target_property(_dirs ${_target} INTERFACE_INCLUDE_DIRECTORIES)
    if(NOT _dirs)
      continue()
    endif()
    set(_kept "")
    set(_changed FALSE)
    foreach(_dir IN LISTS _dirs)
      if(IS_ABSOLUTE "${_dir}" AND NOT _dir MATCHES "^\\$<" AND NOT EXISTS "${_dir}")
        set(_changed TRUE)
      else()
        list(APPEND _kept "${_dir}")
      endif()
    endforeach()
    if(_changed)
      set_target_properties(${_target} PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_kept}")
    endif()
  endforeach()
endfunction()
