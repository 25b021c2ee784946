#!/usr/bin/env bash
# Checks that every C++/CUDA source of the repository is formatted with the project's .clang-format.
# clang-format is pinned to version 14 (Debian 12's clang-format-14): other versions format the same
# file differently, so a check with another version would fail on a correctly formatted tree.
# Usage: tests/static/check_format.sh [--fix]    (--fix formats the files in place instead)
# Exit status: 0 when every file is formatted, 1 when some are not (listed), 2 when clang-format-14
# is missing. CTest runs it as test_format.
set -euo pipefail
cd "$(dirname "$0")/../.."

REQUIRED_MAJOR=14
CLANG_FORMAT=${TESSERA_CLANG_FORMAT:-}
if [ -z "$CLANG_FORMAT" ]; then
  CLANG_FORMAT=$(command -v clang-format-$REQUIRED_MAJOR || true)
fi
if [ -z "$CLANG_FORMAT" ] && command -v clang-format >/dev/null 2>&1 &&
   clang-format --version | grep -q "version $REQUIRED_MAJOR\."; then
  CLANG_FORMAT=$(command -v clang-format)
fi
if [ -z "$CLANG_FORMAT" ]; then
  echo "check_format: clang-format-$REQUIRED_MAJOR not found (Debian: apt-get install clang-format-$REQUIRED_MAJOR," \
       "which installers/install-deps-debian.sh installs)" >&2
  exit 2
fi
if ! "$CLANG_FORMAT" --version | grep -q "version $REQUIRED_MAJOR\."; then
  echo "check_format: $CLANG_FORMAT is not clang-format $REQUIRED_MAJOR ($("$CLANG_FORMAT" --version));" \
       "other versions format differently" >&2
  exit 2
fi

# The sources git knows of; outside a git checkout, the same kinds of files found on disk. Installed
# dependencies (node_modules, .deps, .gpu-deps) and build folders are never checked.
list_sources() {
  if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked files and new ones not yet added (but not the git-ignored).
    git ls-files -z --cached --others --exclude-standard -- '*.cpp' '*.h' '*.cu' '*.cuh' '*.hpp' '*.cc'
  else
    find . \( -name node_modules -o -name '.deps' -o -name '.gpu-deps' -o -name 'build*' -o -name '.git' \) -prune \
      -o -type f \( -name '*.cpp' -o -name '*.h' -o -name '*.cu' -o -name '*.cuh' -o -name '*.hpp' -o -name '*.cc' \) \
      -print0 | sed -z 's|^\./||'
  fi
}
files=()
while IFS= read -r -d '' f; do
  case "$f" in
    */node_modules/* | node_modules/*) continue ;;
  esac
  [ -f "$f" ] && files+=("$f")  # a tracked file deleted in the working tree is skipped
done < <(list_sources)

if [ "${1:-}" = "--fix" ]; then
  printf '%s\0' "${files[@]}" | xargs -0 "$CLANG_FORMAT" -i
  echo "check_format: formatted ${#files[@]} files with $("$CLANG_FORMAT" --version)"
  exit 0
fi

# One clang-format process for all files (one per file costs ~0.1 s each); --dry-run reports every
# unformatted place as "FILE:LINE:COL: error: code should be clang-formatted".
report=$(printf '%s\0' "${files[@]}" | xargs -0 "$CLANG_FORMAT" --dry-run -Werror 2>&1 || true)
bad=()
while IFS= read -r f; do
  [ -n "$f" ] && bad+=("$f")
done < <(printf '%s\n' "$report" | sed -n 's/^\(.*\):[0-9]*:[0-9]*: \(error\|warning\): code should be clang-formatted.*/\1/p' | sort -u)
if [ ${#bad[@]} -eq 0 ] && printf '%s\n' "$report" | grep -q .; then
  echo "check_format: clang-format failed:" >&2
  printf '%s\n' "$report" >&2
  exit 2
fi
if [ ${#bad[@]} -gt 0 ]; then
  echo "check_format: ${#bad[@]} of ${#files[@]} files are not formatted with .clang-format (clang-format $REQUIRED_MAJOR):"
  printf '  %s\n' "${bad[@]}"
  echo "First differences:"
  printf '%s\n' "$report" | head -30
  echo "Fix them with:"
  echo "  $CLANG_FORMAT -i ${bad[*]}"
  echo "(or tests/static/check_format.sh --fix for the whole tree)"
  exit 1
fi
echo "check_format: all ${#files[@]} C++/CUDA sources are formatted ($(basename "$CLANG_FORMAT"))"
