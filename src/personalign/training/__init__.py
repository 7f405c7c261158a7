"""Training personalized reward models: pairs as token ids, the DPO objective, checkpoints, the trainer."""
