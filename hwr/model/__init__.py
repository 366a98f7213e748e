"""The model layer: the CRNN and its CTC loss (``crnn``), model surgery for transfer learning
(``transfer``), CTC decoding (``decode``) and images -> text with a prediction model
(``inference``). Knows nothing of MLflow or data files.

``CTCLossLayer`` is re-exported here because full models logged before the package had
subpackages refer to it as ``hwr.model.CTCLossLayer``; those models must keep loading.
"""

from hwr.model.crnn import CTCLossLayer

__all__ = ["CTCLossLayer"]
