"""Errors inside blocks and functions name the instance and every call site (a call stack),
and keep both ends of a deep one."""

from conftest import check_error

STACK = """block MBConv(out: int, k: int = 3) {
    conv(out, k, padding=k // 2) as conv
    if out == 40 { conv(out, 3, padding=[1, 1, 1]) as bad }
}
block Stage(ws: list[int]) {
    for i in range(len(ws)) {
        MBConv(ws[i]) as "{i}"
    }
}
network net {
    input x: [N, 3, H, W]
    for s in range(3) {
        Stage([8 * (s + 1), 40 if s == 2 else 4]) as "features.{s}"
    }
}
"""


def test_error_inside_a_block_names_the_instance_and_every_call_site(tmp_path, cli):
    path = tmp_path / "net.res"
    path.write_text(STACK)
    r = cli("check", "net.res", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert lines[0].startswith("error[type]: `padding` must be")
    assert " --> net.res:3:20" in lines
    notes = [ln for ln in lines if ln.startswith("   = note:")]
    assert notes == ["   = note: in features.2.1 (MBConv, called at net.res:7:9)",
                     "   = note: in features.2 (Stage, called at net.res:13:9)"]


def test_deep_recursion_keeps_both_ends_of_the_stack():
    e = check_error("block R(k: int) {\n  if k == 0 { conv(3, 3, paddin=1) } else { R(k - 1) }\n}\n"
            "network r { input x: [N, 3, H, W]; R(40) }")
    notes = [t for t, _ in e.notes]
    assert len(notes) == 13 and notes[6] == "... 29 more calls ..."
    assert notes[-1] == "in r_0 (R, called at <string>:4:36)"


def test_error_in_a_fn_names_its_calls():
    e = check_error("fn f(a) = a // 0\nfn g(b) = f(b + 1)\nnetwork r { input x: [N, 3, H, W]; conv(g(2), 1) }")
    assert e.kind == "value" and [t for t, _ in e.notes] == ["in fn f (called at <string>:2:11)",
                                                             "in fn g (called at <string>:3:41)"]
