"""New-knowledge tasks built from records: paper 1's fact task (demo and paper profiles)
and the real-fact task drawn from TriviaQA.
"""
