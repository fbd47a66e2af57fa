"""Which output dimensions follow which bucketed input dimensions, so the loader can trim padding.

The rule (also in the README): output dimension ``k`` follows bucketed dimension ``d`` when its size equals
the bucket size of ``d`` in every compiled artifact. A dimension with a single bucket size is followed only
by the output dimension of the same index (equal sizes alone would be a coincidence). When an output
dimension would follow two bucketed dimensions, the one with its own index wins; otherwise the project has
to declare ``output-dims``. With dynamic batching every output's dim 0 must follow dim 0 (the batch).
"""

from __future__ import annotations

NOT_BUCKETED = -1


class OutputDimsError(ValueError):
    """The output dimensions cannot be matched to bucketed inputs; the message says what to declare."""


def _follows(
    k: int, axis: int, axes: dict[int, list[int]], artifacts: list[tuple[dict[int, int], list[int]]]
) -> bool:
    if len(axes[axis]) == 1 and k != axis:
        return False
    return all(k < len(shape) and shape[k] == bucket[axis] for bucket, shape in artifacts)


def _inferred(
    index: int, axes: dict[int, list[int]], artifacts: list[tuple[dict[int, int], list[int]]]
) -> list[int]:
    dims = []
    for k in range(len(artifacts[0][1])):
        candidates = [axis for axis in axes if _follows(k, axis, axes, artifacts)]
        if len(candidates) > 1:
            if k not in candidates:
                raise OutputDimsError(
                    f"output {index} dim {k} could follow bucketed dims {candidates}; declare output-dims "
                    f"(e.g. output-dims = {{ {index} = [...] }})"
                )
            candidates = [k]
        sizes = {shape[k] for _, shape in artifacts}
        if not candidates and len(sizes) > 1:
            raise OutputDimsError(
                f"output {index} dim {k} changes with the bucket ({sorted(sizes)}) without matching a "
                "bucketed input dim, so padding cannot be trimmed from it; declare it with output-dims "
                f"(-1 keeps it as computed) or change the buckets"
            )
        dims.append(candidates[0] if candidates else NOT_BUCKETED)
    return dims


def output_dims(
    axes: dict[int, list[int]],
    artifacts: list[tuple[dict[int, int], list[list[int]]]],
    declared: dict[str, list[int]],
    dynamic_batch: bool,
) -> list[list[int]]:
    """For each output, the bucketed dim each of its dims follows (or -1). ``artifacts`` holds each
    compiled bucket ({dim: size}) with its output shapes."""
    outputs = len(artifacts[0][1])
    result = []
    for index in range(outputs):
        per_bucket = [(bucket, shapes[index]) for bucket, shapes in artifacts]
        ranks = {len(shape) for _, shape in per_bucket}
        if len(ranks) > 1:
            raise OutputDimsError(
                f"output {index} has a different rank in different buckets: {sorted(ranks)}"
            )
        if str(index) in declared:
            dims = declared[str(index)]
            if len(dims) != len(per_bucket[0][1]) or any(d != NOT_BUCKETED and d not in axes for d in dims):
                raise OutputDimsError(
                    f"output-dims.{index} = {dims}: need one entry per output dim ({len(per_bucket[0][1])}), "
                    f"each -1 or a bucketed dim ({sorted(axes)})"
                )
        else:
            dims = _inferred(index, axes, per_bucket)
        if dynamic_batch and (not dims or dims[0] != 0):
            raise OutputDimsError(
                f"dynamic batching concatenates outputs along dim 0, but output {index} (shape "
                f"{per_bucket[0][1]}) does not have the batch as its dim 0"
            )
        result.append(dims)
    unknown = set(declared) - {str(i) for i in range(outputs)}
    if unknown:
        raise OutputDimsError(f"output-dims names outputs {sorted(unknown)}, but the model has {outputs}")
    return result
