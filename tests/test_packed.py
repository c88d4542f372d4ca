"""The packed reader never misreads: real ``.minarch`` files, mutated as storage and transfer corrupt them (flipped
bits in the header and payload, truncation, extension, a spliced range), are each read to the same tensors or
refused with ``FormatError``; and where a mutation comes with a valid checksum (a writer's bug), the parser still
raises nothing but ``FormatError``, never hangs and never allocates more than the file declares it may."""
import json
import resource
import tempfile
import zlib

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings, strategies as st

from minarch_core import packed
from minarch_core.analyses import encoding, pruning
from minarch_core.engine import models

# every layout (dense, bitmap, relative) and kind (float32, float16, bfloat16, symmetric and asymmetric integers)
VARIANTS = [("dnn", {"widths": [12, 6]}, 0.0, "float32", "symmetric", "tensor"),
            ("dnn", {"widths": [12]}, 0.95, "float16", "symmetric", "tensor"),
            ("cnn", {"channels": 3}, 0.6, "bfloat16", "symmetric", "tensor"),
            ("cnn", {"channels": 2}, 0.9, 4, "asymmetric", "channel"),
            ("dnn", {"widths": [8, 8]}, 0.5, 2, "symmetric", "channel"),
            ("dnn", {"widths": [5]}, 0.99, 8, "symmetric", "tensor")]


def real_file(family, arch, sparsity, precision, scheme, granularity) -> bytes:
    torch.manual_seed(0)
    model = models.build(family, arch, (1, 28, 28), 10)
    if sparsity:
        pruning.make_permanent(pruning.prune_to(model, sparsity, "global"))
    payload = encoding.encode(model, precision, scheme, granularity)
    header = {"family": family, "arch": arch, "tensors": [{"name": n, "shape": list(p.shape)}
                                                          for n, p in model.named_parameters()]}
    text = json.dumps(header, sort_keys=True).encode()
    return packed.PREAMBLE.pack(packed.MAGIC, packed.FORMAT_VERSION, len(text), zlib.crc32(text + payload)) + \
        text + payload


FILES = [real_file(*v) for v in VARIANTS]


def layouts_covered():
    seen = set()
    for blob in FILES:
        seen |= {i["layout"] for i in read(blob)[2]}
    return seen


def read(blob: bytes):
    with tempfile.NamedTemporaryFile(suffix=".minarch") as f:
        f.write(blob)
        f.flush()
        return packed.read(f.name)


def test_the_real_files_cover_every_layout_and_read_back():
    assert layouts_covered() == set(packed.LAYOUTS)
    for blob in FILES:
        header, arrays, _ = read(blob)
        assert list(arrays) == [t["name"] for t in header["tensors"]]


@st.composite
def mutations(draw):
    """A real file and one corruption of it: bits flipped, cut short, extended, or a range overwritten."""
    blob = bytearray(draw(st.sampled_from(FILES)))
    kind = draw(st.sampled_from(["flip", "truncate", "extend", "splice", "reshape"]))
    if kind == "reshape":  # a tensor's declared shape changed, the header rewritten whole (its length too)
        _, _, size, checksum = packed.PREAMBLE.unpack_from(blob)
        header = json.loads(blob[packed.PREAMBLE.size:packed.PREAMBLE.size + size])
        tensor = draw(st.sampled_from(header["tensors"]))
        dim = draw(st.integers(0, len(tensor["shape"]) - 1))
        tensor["shape"][dim] = draw(st.one_of(st.integers(-5, 10 ** 12), st.just(0), st.floats(0, 10)))
        text = json.dumps(header, sort_keys=True).encode()
        blob = bytearray(packed.PREAMBLE.pack(packed.MAGIC, packed.FORMAT_VERSION, len(text), checksum) + text
                         + blob[packed.PREAMBLE.size + size:])
    elif kind == "flip":
        for at in draw(st.lists(st.integers(0, 8 * len(blob) - 1), min_size=1, max_size=8)):
            blob[at // 8] ^= 1 << (at % 8)
    elif kind == "truncate":
        del blob[draw(st.integers(0, len(blob) - 1)):]
    elif kind == "extend":
        blob += draw(st.binary(min_size=1, max_size=64))
    else:
        start = draw(st.integers(0, len(blob) - 1))
        junk = draw(st.binary(min_size=1, max_size=32))
        blob[start:start + len(junk)] = junk
    return bytes(blob)


def fixed_checksum(blob: bytes) -> bytes:
    """``blob`` with its checksum made valid again (when its preamble survived): what a buggy writer would emit."""
    if len(blob) < packed.PREAMBLE.size:
        return blob
    magic, version, size, _ = packed.PREAMBLE.unpack_from(blob)
    return packed.PREAMBLE.pack(magic, version, size, zlib.crc32(blob[packed.PREAMBLE.size:])) + \
        blob[packed.PREAMBLE.size:]


def originals(blob: bytes) -> dict | None:
    for good in FILES:
        if good == blob:
            return read(good)[1]
    return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_a_mutated_file_reads_to_the_same_tensors_or_is_refused(blob):
    try:
        _, arrays, _ = read(blob)
    except packed.FormatError:
        return
    same = originals(blob)
    assert same is not None, "a corrupt file was read without complaint"
    assert all(np.array_equal(arrays[k], same[k]) for k in same)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations())
def test_a_mutated_file_with_a_valid_checksum_raises_only_format_errors_within_bounded_memory(blob):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    try:
        header, arrays, _ = read(fixed_checksum(blob))
    except packed.FormatError:
        pass
    else:
        shapes = [tuple(t["shape"]) for t in header["tensors"]]
        assert [a.shape for a in arrays.values()] == shapes
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 4 * packed.MAX_ELEMENTS * 4 / 2**20  # never past what the reader allows a file


@pytest.mark.parametrize("edit, message", [
    (lambda h: h.update(tensors=[{"name": "w", "shape": [2 ** 20, 2 ** 20]}]), "declares 1,099,511,627,776 values"),
    (lambda h: h.update(tensors=[{"name": "w", "shape": [-3]}]), "shapes lists of integers >= 0"),
    (lambda h: h.update(tensors=[{"name": ["w"], "shape": [3]}]), "tensor names must be strings"),
    (lambda h: h.update(tensors=[{"name": "w", "shape": [2.5]}]), "shapes lists of integers >= 0"),
])
def test_a_header_that_would_misread_or_allocate_without_bound_is_refused_naming_why(edit, message, tmp_path):
    header = {"tensors": []}
    edit(header)
    path = tmp_path / "bad.minarch"
    packed.write(path, header, b"")
    with pytest.raises(packed.FormatError, match=message):
        packed.read(path)


def test_a_relative_index_of_zero_is_refused():
    gaps = encoding.pack_bits(np.array([0, 1]), packed.GAP_BITS)
    tensor = packed.TENSOR.pack(2, packed.FLOAT, 0, 2) + gaps + np.zeros(2, "<f4").tobytes()
    with pytest.raises(packed.FormatError, match="relative index of 0"):
        packed.decode(tensor, [(4,)])


def test_a_header_naming_two_tensors_alike_is_refused():
    # what the fuzzer found: a tensor renamed to another's name kept its bytes and checksum valid, and the reader
    # returned one tensor fewer than the header lists (a dict keyed by name)
    blob = FILES[0].replace(b'"name": "1.weight"', b'"name": "3.weight"', 1)  # the same length
    assert blob != FILES[0]
    with pytest.raises(packed.FormatError, match=r"two tensors share a name: \['3.weight'\]"):
        read(fixed_checksum(blob))
