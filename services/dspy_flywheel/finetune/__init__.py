"""BootstrapFinetune offline on the CPU: LoRA adapters for the embedded llama.cpp model.

* ``provider``: ``EmbeddedProvider`` (DSPy ``Provider`` with ``finetunable = True``) runs the
  trainer child, enforces its budgets, stores the adapter; ``check_training_stack``.
* ``train``: the trainer child (torch, transformers, peft: the ``finetune`` extra).
* ``gguf_lora``: PEFT LoRA weights -> llama.cpp adapter GGUF.
* ``artifacts``: adapters stored by sha256 with their description (``AdapterArtifact``).
* ``serving``: the checks before an engine serves an adapter (base model, hash).
* ``params`` (``TrainParams``), ``errors``.

Importing this package imports neither DSPy nor the training stack.
"""
