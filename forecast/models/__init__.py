"""The models layer: the network's options, the recurrent net and its blocks, the
LightningModule, checkpoints."""
