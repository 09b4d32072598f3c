"""results.py - bench/RESULTS.md as a header plus one section per benchmark.

Used by bench/lookup/run_lookup.py and bench/inbound/run_inbound.py: each
replaces its own "## ..." section and leaves the others as they are, so
running one benchmark by hand does not erase the figures of another.
"""

import os

HEADER = [
    "# Benchmark results",
    "",
    "Produced by the `bench/run-*.sh` scripts (`make bench` runs them all);",
    "see bench/README.md for what is measured and how to read it. Figures from",
    "one machine: compare rows of the same section, not runs on different",
    "machines.",
    "",
]


def write_section(path, title, lines):
    """Replace the section headed "## title" in path (append if absent).

    lines is the body without the heading; the file's header is rewritten
    to HEADER and the other sections are kept in their order.
    """
    sections = []
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = ""
    current = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = [line[3:].strip(), []]
            sections.append(current)
        elif current is not None:
            current[1].append(line)
    body = list(lines)
    while body and not body[0].strip():
        body.pop(0)
    while body and not body[-1].strip():
        body.pop()
    for sec in sections:
        if sec[0] == title:
            sec[1] = [""] + body + [""]
            break
    else:
        sections.append([title, [""] + body + [""]])
    out = list(HEADER)
    for name, sec_lines in sections:
        while sec_lines and not sec_lines[-1].strip():
            sec_lines.pop()
        out.append(f"## {name}")
        out.extend(sec_lines)
        out.append("")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(out))
    os.replace(tmp, path)
