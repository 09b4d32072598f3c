"""The layer rule of lib/README, as `make lint` checks it
(scripts/check-layers.sh): the real tree passes, and a tree that breaks the
rule in each way it can be broken fails with the file and line named.
"""

import os
import shutil
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(REPO, "scripts", "check-layers.sh")


def check(root):
    return subprocess.run(["sh", SCRIPT, str(root)], capture_output=True, text=True,
                          timeout=60)


def tree(tmp_path, files):
    """A source tree with the real lib/README and the given lib/ files."""
    (tmp_path / "lib").mkdir()
    shutil.copy(os.path.join(REPO, "lib", "README"), tmp_path / "lib" / "README")
    for name, text in files.items():
        path = tmp_path / "lib" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_real_tree_keeps_the_layers():
    res = check(REPO)
    assert res.returncode == 0, res.stdout + res.stderr
    assert res.stdout == ""


def test_lower_layer_including_a_higher_one_fails(tmp_path):
    root = tree(tmp_path, {
        "base/str.c": '#include "base/str.h"\n',
        "conf/config.c": '#include "base/str.h"\n\n#include "table/table.h"\n',
        "table/table.c": '#include "conf/config.h"\n',
    })
    res = check(root)
    assert res.returncode == 1
    assert "lib/conf/config.c:3: conf (layer 1) includes table/table.h (layer 3)" in res.stdout
    # The allowed includes (own folder, lower layer) are not reported.
    assert "table.c" not in res.stdout and "str.c" not in res.stdout


def test_same_layer_sideways_include_fails(tmp_path):
    root = tree(tmp_path, {"sql/sql.c": '#include "dns/dns.h"\n'})
    res = check(root)
    assert res.returncode == 1
    assert "lib/sql/sql.c:1: sql (layer 1) includes dns/dns.h (layer 1)" in res.stdout


def test_unlisted_folder_fails(tmp_path):
    root = tree(tmp_path, {"milter/milter.c": '#include "base/str.h"\n',
                           "smtp/x.c": '#include "milter/milter.h"\n'})
    res = check(root)
    assert res.returncode == 1
    assert "lib/milter: folder not listed in lib/README" in res.stdout
    assert "lib/smtp/x.c:1: smtp includes milter/milter.h: folder milter is not in lib/README" in res.stdout
