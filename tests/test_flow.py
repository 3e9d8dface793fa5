"""LazyLLM's flow vocabulary: each test is an example (and its expected output) from
LazyLLM's flow documentation, plus the streaming lineage every branch writes under."""
from __future__ import annotations

import textwrap

import pytest

import lazystream as lazyllm
from lazystream import (ModuleBase, bind, diverter, ifs, loop, package, parallel, pipeline, session,
                        switch, warp, _0, _1)
from lazystream.queue import read_session


class Functor:
    def __call__(self, x):
        return x * x


def _run_module_code(code: str) -> dict:
    """Run ``code`` as module-level code (LazyLLM's nested `with ... as p1.p2:` names p2 there)."""
    namespace = {"__name__": "flow_example"}
    exec(compile(textwrap.dedent(code), "<flow example>", "exec"), namespace)
    return namespace


# --- pipeline -----------------------------------------------------------------------------

def test_pipeline_takes_functions_functors_and_functor_classes():
    def f1(input):
        return input + 1

    assert pipeline(f1, lambda x: x * 2, Functor(), Functor)(1) == 256


def test_pipeline_with_block_assigns_named_steps():
    with pipeline() as p:
        p.f1 = lambda x: x + 1
        p.f2 = lambda x: x * 2
        p.f3 = Functor()
    assert p(1) == 16


def test_pipeline_keyword_steps_are_reachable_by_name():
    ppl = pipeline(stage1=lambda x: x + 1, stage2=lambda x: f"get {x}")
    assert ppl(1) == "get 2"
    assert ppl.stage2(3) == "get 3"


def test_steps_cannot_be_replaced_outside_the_with_block():
    with pipeline() as p:
        p.f1 = str
    with pytest.raises(AttributeError, match="step 'f1' can be set only inside the flow's `with` block"):
        p.f1 = repr


def _f1(input, input2=0):
    return input + input2 + 1


def _f2(input):
    return input + 3


def _f3(input):
    return f"f3-{input}"


def _f4(in1, in2, in3):
    return f"get [{in1}], [{in2}], [{in3}]"


def test_bind_routes_the_pipeline_input_the_step_input_and_an_earlier_output():
    with pipeline() as p:
        p.f1 = _f1
        p.f2 = _f2
        p.f3 = _f3
        p.f4 = bind(_f4, p.input, _0, p.f2)
    assert p(1) == "get [1], [f3-5], [5]"


def test_bind_with_the_pipe_spelling_and_keywords():
    with pipeline() as p:
        p.f1 = _f1
        p.f2 = _f2
        p.f3 = _f3
        p.f4 = _f4 | bind(p.input, _0, in3=p.f2)
    assert p(1) == "get [1], [f3-5], [5]"


_NESTED_PRELUDE = """
        from lazystream import pipeline, bind
        def f1(input): return dict(a=input[0], b=input[1])
        def f2(input): return input['a'] + input['b']
        def f3(input, extro): return f'[{input} + {extro}]'
"""


def test_bind_indexes_the_input_of_nested_pipelines():
    ns = _run_module_code(_NESTED_PRELUDE + """
        with pipeline() as p1:
            p1.f1 = f1
            with pipeline() as p1.p2:
                p2.f2 = f2
                p2.f3 = f3 | bind(extro=p2.input['b'])
            p1.f3 = f3 | bind(extro=p1.input[0])
        result = p1([1, 2])
    """)
    assert ns["result"] == "[[3 + 2] + 1]"


def test_pipeline_bind_passes_the_outer_input_into_a_nested_flow():
    ns = _run_module_code(_NESTED_PRELUDE + """
        with pipeline() as p1:
            p1.f1 = f1
            p1.f2 = f2
            with pipeline().bind(extro=p1.input[0]) as p1.p2:
                p2.f3 = f3
            p1.p3 = pipeline(f3) | bind(extro=p1.input[1])
        result = p1([1, 2])
    """)
    assert ns["result"] == "[[3 + 1] + 2]"


def test_bind_outside_its_pipeline_names_the_fix():
    with pipeline() as p:
        p.f1 = str
    stray = bind(_f4, p.input, _0, 3)
    with pytest.raises(RuntimeError, match=r"bind: <pipeline input> is used outside a run of"):
        stray(1)


def test_bind_placeholder_beyond_the_inputs_is_named():
    with pytest.raises(IndexError, match=r"placeholder _1 needs at least 2 inputs, the step got 1"):
        pipeline(bind(_f4, _0, _1, 3))(1)


# --- parallel and its shapes ------------------------------------------------------------

def _same(input):
    return input


def test_parallel_with_block_returns_a_tuple():
    with parallel() as p:
        p.f1 = _same
        p.f2 = _same
    assert p(1) == (1, 1)


def test_parallel_asdict_and_sum_in_with_blocks():
    with parallel().asdict as p:
        p.f1 = _same
        p.f2 = _same
    assert p(1) == dict(f1=1, f2=1)
    with parallel().sum as p:
        p.f1 = _same
        p.f2 = _same
    assert p(1) == 2


def test_parallel_sequential():
    with parallel.sequential() as p:
        p.f1 = _same
        p.f2 = _same
    assert p(1) == (1, 1)


def test_parallel_result_shapes():
    test1, test2, test3 = (lambda a: a + 1), (lambda a: a * 4), (lambda a: a / 2)
    assert parallel(test1, test2, test3)(1) == (2, 4, 0.5)
    assert parallel(a=test1, b=test2, c=test3).asdict(2) == {"a": 3, "b": 8, "c": 1.0}
    shaped = parallel(a=test1, b=test2, c=test3).astuple(-1)
    assert shaped == (0, -4, -0.5) and type(shaped) is tuple
    assert parallel(a=test1, b=test2, c=test3).aslist(0) == [1, 0, 0.0]
    assert parallel(a=test1, b=test2, c=test3).join("\n")(1) == "2\n4\n0.5"
    assert parallel(str, repr).sum("x") == "x'x'"


def test_a_package_reaches_the_next_step_as_arguments():
    assert pipeline(parallel(lambda x: x + 1, lambda x: x * 3), lambda a, b: f"{a}|{b}")(2) == "3|6"


def test_asdict_needs_named_steps():
    with pytest.raises(ValueError, match=r"parallel.asdict: every step needs a name"):
        parallel(str, repr).asdict("x")


def test_shape_chosen_twice_is_refused():
    with pytest.raises(ValueError, match=r"already shaped by .sum"):
        parallel(str).sum.aslist


# --- diverter, warp ------------------------------------------------------------------------

def test_diverter_gives_each_branch_its_own_input():
    assert diverter(lambda x: x + 1, lambda x: x * 2, lambda x: -x)(1, 2, 3) == (2, 4, -3)
    div = diverter(a=lambda x: x + 1, b=lambda x: x * 2, c=lambda x: -x).asdict
    assert div(1, 2, 3) == {"a": 2, "b": 4, "c": -3}
    assert div(dict(c=3, b=2, a=1)) == {"a": 2, "b": 4, "c": -3}


def test_diverter_with_the_wrong_number_of_inputs_says_so():
    with pytest.raises(ValueError, match=r"diverter: needs 2 inputs, one per branch, got \(1, 2, 3\)"):
        diverter(str, str)(1, 2, 3)


def test_warp_applies_one_step_to_each_input():
    assert warp(lambda x: x * 2)(1, 2, 3, 4) == (2, 4, 6, 8)
    assert warp(pipeline(lambda x: x * 2, lambda x: f"get {x}"))(1, 2, 3, 4) == \
        ("get 2", "get 4", "get 6", "get 8")
    assert warp(lambda x, y: x * 2 + y)([package(1, 2), package(10, 20)]) == (4, 40)


def test_warp_of_several_steps_is_a_pipeline_per_input():
    assert warp(lambda x: x + 1, lambda x: x * 10)(1, 2) == (20, 30)


# --- ifs, switch, loop ---------------------------------------------------------------------

def test_ifs_runs_the_true_or_the_false_path():
    flow = ifs(lambda x: x > 0, lambda x: x * 2, lambda x: -x)
    assert (flow(10), flow(-5)) == (20, 5)


def test_switch_with_conditions_and_a_default():
    def is_positive(x): return x > 0
    def is_negative(x): return x < 0
    sw = switch(is_positive, lambda x: 2 * x, is_negative, lambda x: -x, "default", lambda x: "000",
                judge_on_full_input=True)
    assert (sw(1), sw(0), sw(-4)) == (2, "000", 4)


def test_switch_cases_in_a_with_block():
    def is_1(x): return x == 1
    def is_2(x): return x == 2
    def is_3(x): return x == 3
    with switch(judge_on_full_input=True) as sw:
        sw.case[is_1::lambda x: 2 * x]
        sw.case(is_2, lambda x: 3 * x)
        sw.case[is_3, lambda x: x]
    assert (sw(1), sw(2), sw(3)) == (2, 6, 3)


def test_switch_on_a_value_and_on_the_first_element():
    sw = switch({"a": lambda x: f"A:{x}", "b": lambda x: f"B:{x}"}, judge_on_full_input=False)
    assert sw("b", "payload") == "B:payload"
    assert switch("x", str.upper, "y", str.lower)("x") == "X"


def test_switch_without_a_matching_case_names_the_value():
    with pytest.raises(ValueError, match=r"switch: no case matches 7 \(conditions: 1, 2\); add a 'default' case"):
        switch(1, str, 2, str)(7)


def test_loop_until_the_stop_condition():
    lp = loop(lambda x: x * 2, stop_condition=lambda x: x > 10, judge_on_full_input=True)
    assert (lp(1), lp(3)) == (16, 12)
    with loop(stop_condition=lambda x: x > 10, judge_on_full_input=True) as lp:
        lp.f1 = lambda x: x + 1
        lp.f2 = lambda x: x * 2
    assert lp(0) == 14


def test_loop_count_bounds_the_rounds():
    assert loop(lambda x: x + 1, count=3)(0) == 3


def test_unbounded_loop_is_refused():
    with pytest.raises(ValueError, match="give stop_condition=... or count=..."):
        loop(str)


# --- every branch streams under its own lineage ------------------------------------------

class Say(ModuleBase):
    """Streams ``word`` and returns it."""

    def __init__(self, word: str, **kw) -> None:
        super().__init__(**kw)
        self.word = word

    def forward(self, *args):
        self.stream_output(self.word)
        return self.word


def _text_by_ns(sid):
    return [(e.ns, e.data) for e in read_session(sid) if e.kind == "text"]


def test_each_flow_writes_under_its_branch_lineage():
    with session() as sid:
        parallel(Say("a", name="sa"), Say("b", name="sb")).sum(0)
        diverter(Say("c", name="sc"), Say("d", name="sd"))(1, 2)
        warp(Say("e", name="se"))(1, 2)
        ifs(True, Say("f", name="sf"), Say("g", name="sg"))(0)
        switch(0, Say("h", name="sh"), "default", Say("i", name="si"))(5)
        loop(Say("j", name="sj"), count=2)(0)
    got = _text_by_ns(sid)
    assert sorted(got[:2]) == [(("parallel", "branch0", "sa"), "a"), (("parallel", "branch1", "sb"), "b")]
    assert sorted(got[2:4]) == [(("diverter", "branch0", "sc"), "c"), (("diverter", "branch1", "sd"), "d")]
    assert sorted(got[4:6]) == [(("warp", "branch0", "se"), "e"), (("warp", "branch1", "se"), "e")]
    assert got[6:] == [(("ifs", "true_path", "sf"), "f"), (("switch", "case1", "si"), "i"),
                       (("loop", "iteration0", "sj"), "j"), (("loop", "iteration1", "sj"), "j")]


def test_named_flow_steps_take_the_step_name_in_the_lineage():
    with session() as sid:
        with pipeline() as p:
            p.first = Say("x")
            p.second = Say("y")
        p(0)
    assert _text_by_ns(sid) == [(("pipeline", "first"), "x"), (("pipeline", "second"), "y")]


def test_a_failing_branch_is_named_with_its_flow():
    def boom(x):
        raise KeyError(x)

    with pytest.raises(lazyllm.BranchError, match=r"diverter branch 1 \(boom\) failed: KeyError"):
        diverter(str, boom)(1, 2)


def test_loop_judging_only_the_first_element():
    lp = loop(lambda x: (x > 5, x + 2), stop_condition=bool, judge_on_full_input=False)
    assert lp(0) == 8


def test_switch_judging_the_first_element_of_a_bad_input_says_what_it_needs():
    with pytest.raises(TypeError, match=r"switch\(judge_on_full_input=False\): expected \(value to judge, "
                                        r"input\.\.\.\), got 3"):
        switch("a", str, judge_on_full_input=False)(3)


def test_auto_capture_takes_the_variables_the_block_defines():
    with pipeline(auto_capture=True) as p:
        p1 = _f1
        p2 = _f2
        p3 = _f3
        p4 = _f4 | bind(p.input, _0, in3=p2)
    assert p(1) == "get [1], [f3-5], [5]"
    assert [step is s for step, s in zip(p.steps, (p1, p2, p3, p4))] == [True] * 4


def test_bound_values_belong_to_their_own_run_across_threads_and_branches():
    with pipeline() as p:
        p.double = lambda x: x * 2
        p.both = parallel(bind(lambda a, b: (a, b), _0, p.input), bind(lambda d: d, p.output("double")))
    with lazyllm.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(p, range(32)))
    assert results == [((2 * i, i), 2 * i) for i in range(32)]
