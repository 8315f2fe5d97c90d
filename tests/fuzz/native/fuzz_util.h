// fuzz_util.h — shared pieces of the libFuzzer targets: an in-memory file that the production
// loader opens by path (so the fuzzer exercises the same open/fstat/mmap code as a real load),
// and a check that aborts (a finding) instead of throwing.
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace fuzz {

// One memfd per process, rewritten for every input; its /proc path goes to GGUFFile::open().
class MemFile {
public:
    MemFile() {
        fd_ = memfd_create("fuzz-input", MFD_CLOEXEC);
        if (fd_ < 0) { std::perror("memfd_create"); std::abort(); }
        path_ = "/proc/self/fd/" + std::to_string(fd_);
    }
    const std::string& write(const uint8_t* data, size_t size) {
        if (ftruncate(fd_, 0) != 0 || pwrite(fd_, data, size, 0) != static_cast<ssize_t>(size)) {
            std::perror("memfd write");
            std::abort();
        }
        return path_;
    }

private:
    int fd_ = -1;
    std::string path_;
};

// An invariant of the code under test is broken: report and abort so libFuzzer keeps the input.
#define FUZZ_REQUIRE(cond)                                                                  \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "FUZZ_REQUIRE failed: %s (%s:%d)\n", #cond, __FILE__, __LINE__); \
            std::abort();                                                                   \
        }                                                                                   \
    } while (0)

}  // namespace fuzz
