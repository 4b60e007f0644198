"""graph_service"""
