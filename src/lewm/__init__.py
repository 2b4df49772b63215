"""lewm — LeWorldModel: a joint-embedding predictive world model trained end-to-end from pixels.

Axis glossary used in every shape comment:
    B  batch (clips, or episodes when planning)     T  time (frames of a clip)
    S  candidate action sequences per episode        H  planning horizon (action blocks)
    D  latent dimension                              A  raw action dimension
    Ab action-block dimension = frameskip * A        C  context (history) frames
    h, w image height/width (pixels are uint8 HWC in data)
"""

__version__ = "0.1.0"
