// A shared library that is not an ssld plugin: it exports a function, but no handshake.
extern "C" __attribute__((visibility("default"))) int some_other_library_function(void) { return 42; }
