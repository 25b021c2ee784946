#pragma once
// Outputs are written next to their destination under a temporary name, flushed to disk and then
// renamed over the destination: a crash, a full disk or a cancel never leaves a half-written file
// where a finished one is expected. Temporaries a killed process left beside a destination are
// removed by the next write to it.
#include <functional>
#include <ostream>
#include <string>

namespace tessera::io {

// Calls `write` with a stream onto a temporary file beside `path`, then fsyncs and renames it to
// `path`. If `write` throws or any write fails (e.g. ENOSPC), the temporary file is removed and a
// tessera::Error naming `path` is thrown; an existing file at `path` is left untouched.
// `check`, when given, reads the complete temporary file before the rename; if it throws, the file
// is removed and `path` is left untouched (an export's self-check). Both writers refuse a `path`
// whose parent folder does not exist rather than create it.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write,
                           const std::function<void(const std::string& tmp_path)>& check = {});

// Same for a folder: `fill` receives a fresh temporary folder beside `path`; on success the folder
// is renamed to `path` (which must not exist, or is replaced when `replace` is true, by one atomic
// exchange where the file system has RENAME_EXCHANGE).
void write_folder_atomically(const std::string& path, bool replace,
                             const std::function<void(const std::string& tmp_dir)>& fill);

}  // namespace tessera::io
