#!/usr/bin/env python3
"""Writes console_assets.cc: the console's web files as byte arrays.

embed.py OUT.cc URL_PATH=FILE ...   (a genrule in BUILD.bazel runs it)"""
import sys

TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
         ".css": "text/css; charset=utf-8"}


def main():
    out, pairs = sys.argv[1], sys.argv[2:]
    lines = ['#include "tracker/console/console_assets.h"', "",
             "namespace kwq::tracker {", "namespace {"]
    entries = []
    for i, pair in enumerate(pairs):
        path, file = pair.split("=", 1)
        data = open(file, "rb").read()
        ctype = next((t for ext, t in TYPES.items() if file.endswith(ext)),
                     "application/octet-stream")
        body = ",".join(str(b) for b in data)
        lines.append(f"const unsigned char kAsset{i}[] = {{{body}}};")
        entries.append(f'      {{"{path}", {{absl::string_view(reinterpret_cast<const char*>(kAsset{i}), {len(data)}), '
                       f'"{ctype}"}}}},')
    lines += ["}  // namespace", "",
              "const std::vector<std::pair<std::string, ConsoleAsset>>& ConsoleAssets() {",
              "  static const auto* assets =",
              "      new std::vector<std::pair<std::string, ConsoleAsset>>{"]
    lines += entries
    lines += ["      };", "  return *assets;", "}", "", "}  // namespace kwq::tracker", ""]
    with open(out, "w") as f:
        f.write("\n".join(lines))


if __name__ == "__main__":
    main()
