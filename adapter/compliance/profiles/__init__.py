"""carebridge StructureDefinitions, ValueSets and CodeSystems: drop a JSON file here to add one."""
