"""The compression frontier: the smallest model, in bytes, that reaches an accuracy, and how sure that is.

A **variant** is a trained model pruned (one-shot, global L1 magnitude over its family's weight layers) to a sparsity
of the compression grid's ``frontier`` slice (``engine.compression``), its surviving weights then rounded to one of
its precisions (on the slice's one integer grid, symmetric per output channel by default, or a float cast; pruned
weights stay exactly zero, since every grid keeps 0 at 0). Its size is the byte count of ``encoding.encode``
(headers, scales and the cheaper of dense and sparse layouts, per tensor). Its accuracy is measured in two stages.
First the validation split, which all choosing reads, **raced** (``race``, rule and guarantee in ``racing``): within
each family, a variant stops being measured once a no-larger variant is proven more accurate on the images measured
so far, so only variants that could be on the frontier are measured on the whole split (``variants`` measures every
one on it, the reference the tests hold racing to). Then, by ``complete``, the whole test split for the variants the
book reports (``reported``) and for any that ``recommend`` chooses later. A variant's test accuracy is the same number
either way, so skipping it for the variants nobody reports changes no answer.

Choices: the frontier is drawn from the stable configurations (regime learning or overfitting) of every family
(``models.FAMILIES``; of the DNNs, the square ones), the grid's ``seeds`` seeds each. ``recommend`` chooses on the
**validation** split, by a one-sided Student-t lower bound on the seeds' mean accuracy at the asked confidence, among
the variants racing let finish, and reports the **test** split: choosing on test accuracy would flatter every
answer.

The package splits the work by job: ``measure`` (building, racing and completing the variants), ``choose``
(pooling seeds, Pareto sets, ``recommend``) and ``words`` (the frontier for people); its names are all here.
"""
from .choose import (ASK, KEYS, answers, candidates, front, near_best, owners, pareto, recommend, reported, summarise,
                     targets, variant_names)
from .measure import RACE_CACHE_BYTES, chosen_runs, complete, compressed, pairs, race, variants
from .answer import WIDTH, Answer, sparsity_text
from .words import (across, ownership, precision_text, racing_text, readable, recovery_text, settings_text, size_text,
                    transcript)

__all__ = ["ASK", "KEYS", "answers", "candidates", "front", "near_best", "owners", "pareto", "recommend", "reported",
           "summarise", "targets", "variant_names",
           "RACE_CACHE_BYTES", "chosen_runs", "complete", "compressed", "pairs", "race", "variants", "WIDTH", "Answer",
           "across", "ownership", "precision_text", "racing_text", "readable", "recovery_text", "settings_text",
           "size_text", "sparsity_text", "transcript"]
