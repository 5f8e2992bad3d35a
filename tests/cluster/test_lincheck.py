"""The linearizability checker has teeth: known histories, known verdicts.

These run without agents. They pin down the conventions the cluster tests
rely on (closed intervals, pending-forever puts, not-found reads) so a
passing check of a real history means something.
"""
import history


def put(c, k, v, call, ret):
    return {"client": c, "key": k, "op": "put", "value": v,
            "call": call, "return": ret}


def get(c, k, v, call, ret):
    return {"client": c, "key": k, "op": "get", "found": v is not None,
            "value": v or "", "call": call, "return": ret}


def verdict(tmp_path, ops):
    result, out = history.check(ops, tmp_path, timeout_s=30)
    return result


def test_sequential_history_is_linearizable(tmp_path):
    ops = [get(0, "a", None, 0, 1), put(0, "a", "1", 2, 3),
           get(1, "a", "1", 4, 5), put(1, "a", "2", 6, 7),
           get(0, "a", "2", 8, 9)]
    assert verdict(tmp_path, ops) == "Ok"


def test_stale_read_is_caught(tmp_path):
    # put 2 completed before the read started, yet the read saw 1.
    ops = [put(0, "a", "1", 0, 10), put(0, "a", "2", 20, 30),
           get(1, "a", "1", 40, 50)]
    assert verdict(tmp_path, ops) == "Illegal"


def test_lost_write_is_caught(tmp_path):
    ops = [put(0, "a", "1", 0, 10), get(1, "a", None, 20, 30)]
    assert verdict(tmp_path, ops) == "Illegal"


def test_concurrent_put_may_order_either_way(tmp_path):
    ops = [put(0, "a", "1", 0, 10), put(1, "a", "2", 5, 30),
           get(2, "a", "1", 12, 14), get(2, "a", "2", 31, 32)]
    assert verdict(tmp_path, ops) == "Ok"


def test_reads_cannot_go_back_in_time(tmp_path):
    # Both puts are concurrent with both reads, but once one reader has
    # seen 2 after 1, a later reader cannot see 1 again.
    ops = [put(0, "a", "1", 0, 100), put(1, "a", "2", 0, 100),
           get(2, "a", "1", 10, 20), get(2, "a", "2", 30, 40),
           get(3, "a", "1", 50, 60)]
    assert verdict(tmp_path, ops) == "Illegal"


def test_unknown_put_may_apply_late_or_never(tmp_path):
    ops = [put(0, "a", "1", 0, 10), put(1, "a", "3", 20, -1),
           get(2, "a", "1", 30, 40), get(2, "a", "3", 50, 60)]
    assert verdict(tmp_path, ops) == "Ok"
    never = [put(0, "a", "1", 0, 10), put(1, "a", "3", 20, -1),
             get(2, "a", "1", 30, 40), get(2, "a", "1", 50, 60)]
    assert verdict(tmp_path, never) == "Ok"


def test_unknown_put_cannot_apply_before_its_call(tmp_path):
    ops = [put(1, "a", "3", 20, -1), get(2, "a", "3", 0, 10)]
    assert verdict(tmp_path, ops) == "Illegal"


def test_keys_are_independent(tmp_path):
    ok = [put(0, "a", "1", 0, 10), put(0, "b", "2", 20, 30),
          get(1, "a", "1", 40, 50), get(1, "b", "2", 40, 50)]
    assert verdict(tmp_path, ok) == "Ok"
    crossed = [put(0, "a", "1", 0, 10), put(0, "b", "2", 20, 30),
               get(1, "a", "2", 40, 50)]
    assert verdict(tmp_path, crossed) == "Illegal"
