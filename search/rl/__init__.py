"""The AlphaTensor-style agent: TensorGame, network, sampled MCTS, training, actors (issue #6).

Layering: imports the algebra (``compiler.algebra.factors``) only; rewards of finished factorizations come
through ``search.rewards`` plugins. torch is needed for the network and training.
"""
