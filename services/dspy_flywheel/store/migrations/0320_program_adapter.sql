-- The LoRA adapter a program version's LM serves (finetune.AdapterArtifact: sha256, size, base
-- model and its sha256, training parameters, loss curve); NULL for prompt-only versions. The
-- bytes are in the artifact store under the sha256.
ALTER TABLE programs ADD COLUMN IF NOT EXISTS adapter jsonb;
