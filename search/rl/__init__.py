"""The AlphaTensor-style agent: TensorGame, network, sampled MCTS, training, actors.

Layering: imports the algebra (``compiler.algebra.factors``) only; rewards of finished factorizations come
through ``search.rewards`` plugins. torch is needed for the network and training.
"""
