/*
 * A line filter in C, built with clang and wasi-libc for wasm32-wasip1 (Debian: `clang
 * --target=wasm32-wasi`, with the packages clang, lld, wasi-libc and libclang-rt-dev-wasm32):
 * reads stdin line by line, writes each line upper-cased (ASCII) to stdout and flushes it, so a
 * host waiting for the reply gets it at once; at EOF, logs the number of lines to stderr.
 *
 * The same program builds and runs natively (`cc -o upper upper.c && echo hi | ./upper`), which
 * is how to test a guest before sandboxing it. Lines of any length work (getline).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

int main(void) {
    char *line = NULL;
    size_t capacity = 0;
    ssize_t length;
    unsigned long lines = 0;
    while ((length = getline(&line, &capacity, stdin)) != -1) {
        for (ssize_t i = 0; i < length; i++) {
            line[i] = (char)toupper((unsigned char)line[i]);
        }
        if (fwrite(line, 1, (size_t)length, stdout) != (size_t)length || fflush(stdout) != 0) {
            perror("c-upper: write");
            return 1;
        }
        lines++;
    }
    free(line);
    if (ferror(stdin)) {
        perror("c-upper: read");
        return 1;
    }
    fprintf(stderr, "c-upper: %lu lines\n", lines);
    return 0;
}
