//! veild library
